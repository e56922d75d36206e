"""Exports of a model's best weights to deployment formats: asking for one.

The export itself runs on a light worker (``training.engine.exports``); this module
only records the request and queues it, by actor name, so the web process never
imports the worker's code.

TFLite is not offered: ultralytics 8.4 builds it with ``litert-torch``, which brings
jax, transformers and kagglehub (docs/exports.md)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from hubsite.jobs import LIGHT_QUEUE, send_by_name_on_commit
from training.models import Export, YoloModel

EXPORT_MODEL_ACTOR = "export_model"

Format = Export.Format

# What each format is for, on the Artifacts tab.
PURPOSES: dict[str, str] = {
    Format.ONNX: "Runs in most runtimes (ONNX Runtime, OpenCV DNN, TensorRT, browsers).",
    Format.TORCHSCRIPT: "For PyTorch without Python: LibTorch in C++.",
    Format.OPENVINO: "For Intel CPUs, GPUs and NPUs with OpenVINO.",
    Format.NCNN: "For phones and ARM boards (Android, Raspberry Pi) with NCNN.",
    Format.COREML: "For Apple devices (iPhone, iPad, Mac) with Core ML.",
}

# The stored file's fixed name. Formats that are a folder (OpenVINO's and NCNN's
# ``best_*_model/``, CoreML's ``best.mlpackage/``) are stored as one zip of that folder.
STORED_NAMES: dict[str, str] = {
    Format.ONNX: "best.onnx",
    Format.TORCHSCRIPT: "best.torchscript",
    Format.OPENVINO: "best-openvino.zip",
    Format.NCNN: "best-ncnn.zip",
    Format.COREML: "best-coreml.zip",
}


class ExportRefused(Exception):
    pass


@dataclass(frozen=True)
class OfferedExport:
    """A format offered on the Artifacts tab, with the model's export of it if any."""

    format: str
    label: str
    purpose: str
    export: Export | None


def offered_exports(model: YoloModel) -> list[OfferedExport]:
    exports = {export.format: export for export in model.exports.all()}
    return [OfferedExport(value, str(label), PURPOSES[value], exports.get(value)) for value, label in Format.choices]


def request_export(model: YoloModel, export_format: str) -> Export:
    """Queue an export of the model's current best weights (again, if they changed)."""
    if export_format not in Format.values:
        raise ExportRefused(f"Choose one of the export formats: {', '.join(str(label) for label in Format.labels)}.")
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


def export_key(model: YoloModel, export_format: str) -> str:
    """Where an export is stored: the model's prefix and a fixed name, never user text."""
    return f"{model.storage_prefix}/exports/{STORED_NAMES[export_format]}"


def download_ending(export_format: str) -> str:
    """The end of an export's download name, after the model name's slug."""
    return f"-{STORED_NAMES[export_format]}"
