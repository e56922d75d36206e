"""Exports of a model's best weights (ONNX, TorchScript): asking for one.

The export itself runs on a light worker (``training.engine.exports``); this module
only records the request and queues it, by actor name, so the web process never
imports the worker's code."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from hubsite.jobs import LIGHT_QUEUE, send_by_name_on_commit
from training.models import Export, YoloModel

EXPORT_MODEL_ACTOR = "export_model"


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
        send_by_name_on_commit(EXPORT_MODEL_ACTOR, LIGHT_QUEUE, export.pk)
    return export


def export_key(model: YoloModel, produced: Path) -> str:
    """Where an export is stored: the model's prefix and a fixed name, never user text."""
    return f"{model.storage_prefix}/exports/best{produced.suffix}"
