"""The export job, run by a light worker: the model's best weights, exported and stored."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from training.engine.runner import download
from training.exports import export_key
from training.models import Export
from training.yolo.exports import export_weights

logger = logging.getLogger(__name__)


def run_export(export_id: int) -> None:
    claimed = Export.objects.filter(pk=export_id, status=Export.Status.PENDING).update(status=Export.Status.RUNNING)
    if not claimed:
        return
    export = Export.objects.select_related("model").get(pk=export_id)
    model = export.model
    work_dir = Path(tempfile.mkdtemp(prefix="hubsite-export-"))
    try:
        # A fixed file name: nothing the user typed (the model name) may appear in a path.
        weights = download(model.best_weights.name or "", work_dir / "best.pt")
        produced = export_weights(weights, export.format, int(model.train_args.get("imgsz", 640)), work_dir)
        if produced.is_dir():
            produced = zip_folder(produced, work_dir / "export.zip")
        with produced.open("rb") as handle:
            name = default_storage.save(export_key(model, export.format), File(handle))
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


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder`` as one zip whose entries start with the folder's own name (the
    exporter's fixed ``best_openvino_model/``, ``best.mlpackage/``, ...), so that it
    unpacks to what ultralytics and the format's runtime expect."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                raise RuntimeError(f"the exporter left a link in its folder: {path.name}")
            if path.is_file():
                bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive
