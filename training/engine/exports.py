"""Exports of a model's best weights (ONNX, TorchScript), run by a light worker."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from hubsite.jobs import send_on_commit
from training.engine.runner import download
from training.models import Export, YoloModel

logger = logging.getLogger(__name__)


class ExportRefused(Exception):
    pass


def request_export(model: YoloModel, export_format: str) -> Export:
    """Queue an export of the model's current best weights (again, if they changed)."""
    if export_format not in Export.Format.values:
        raise ExportRefused("Choose ONNX or TorchScript.")
    if not model.best_weights:
        raise ExportRefused("There are no weights to export yet: the first epoch must complete first.")
    with transaction.atomic():
        export, created = Export.objects.select_for_update().get_or_create(
            model=model, format=export_format, defaults={"weights_epoch": model.epochs_completed}
        )
        if not created:
            if export.status in (Export.Status.PENDING, Export.Status.RUNNING):
                return export
            export.status = Export.Status.PENDING
            export.weights_epoch = model.epochs_completed
            export.error = ""
            export.finished_at = None
            export.save(update_fields=["status", "weights_epoch", "error", "finished_at"])
        from training.engine.actors import export_model

        send_on_commit(export_model, export.pk)
    return export


def run_export(export_id: int) -> None:
    claimed = Export.objects.filter(pk=export_id, status=Export.Status.PENDING).update(status=Export.Status.RUNNING)
    if not claimed:
        return
    export = Export.objects.select_related("model").get(pk=export_id)
    model = export.model
    work_dir = Path(tempfile.mkdtemp(prefix="hubsite-export-"))
    try:
        produced = _export(model, export.format, work_dir)
        with produced.open("rb") as handle:
            name = default_storage.save(export_key(model, produced), File(handle))
        previous = export.file.name
        Export.objects.filter(pk=export_id).update(
            status=Export.Status.DONE, file=name, finished_at=timezone.now(), error=""
        )
        if previous and previous != name:
            default_storage.delete(previous)
    except Exception as error:
        logger.exception("export %s failed", export_id)
        Export.objects.filter(pk=export_id).update(
            status=Export.Status.FAILED, error=f"The export failed: {error}"[:1000], finished_at=timezone.now()
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def export_key(model: YoloModel, produced: Path) -> str:
    """Where an export is stored: the model's prefix and a fixed name, never user text."""
    return f"{model.storage_prefix}/exports/best{produced.suffix}"


def _export(model: YoloModel, export_format: str, work_dir: Path) -> Path:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    # A fixed file name: ultralytics writes the export next to it, named after it, so
    # nothing the user typed (the model name) may appear in this path.
    weights = download(model.best_weights.name or "", work_dir / "best.pt")
    imgsz = int(model.train_args.get("imgsz", 640))
    produced = Path(YOLO(str(weights)).export(format=export_format, imgsz=imgsz, device="cpu")).resolve()
    if not produced.is_relative_to(work_dir.resolve()):
        raise RuntimeError("the exporter wrote outside its work folder")
    return produced
