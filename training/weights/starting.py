"""Choosing a new model's starting weights, and creating the model with its own copy.

A user may start a model from the best or last weights of any of their models, or
from one of their uploads the check accepted. The chosen file is copied under the
new model's storage prefix when the model is created, so retraining or deleting the
parent (or the upload) never changes what the new model starts from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction

from hubsite.models import User
from training import catalogue
from training.datasets import storage_put
from training.models import Dataset, StartKind, WeightsUpload, YoloModel
from training.weights.architectures import task_of

WEIGHT_FIELDS = {"best": "best_weights", "last": "last_checkpoint"}
EPOCH_IN_KEY = re.compile(r"epoch-(\d+)\.pt$")


class StartWeightsGone(Exception):
    """The chosen weights were replaced or deleted while the model was being created."""


@dataclass(frozen=True)
class StartWeights:
    value: str  # the form's value: "model:<uid>:best", "model:<uid>:last" or "upload:<uid>"
    kind: str  # StartKind
    key: str  # the weights file in storage
    architecture: str
    task: str
    origin: str  # the parent's name or the uploaded file's name
    description: str  # which weights: "best weights, epoch 12"
    class_count: int
    parent: YoloModel | None = None

    @property
    def label(self) -> str:
        task = Dataset.Task(self.task).label.lower() if self.task in Dataset.Task.values else self.task
        return f"{self.origin}: {self.description} ({self.architecture}, {task}, {self.class_count} classes)"


def start_options(owner: User) -> list[StartWeights]:
    """Every set of weights the owner may start a model from, own models first."""
    options = [
        _model_option(model, kind)
        for model in YoloModel.objects.filter(owner=owner).select_related("dataset").order_by("name", "-created_at")
        for kind in WEIGHT_FIELDS
        if getattr(model, WEIGHT_FIELDS[kind]).name
    ]
    uploads = WeightsUpload.objects.filter(owner=owner, status=WeightsUpload.Status.READY).exclude(weights="")
    options.extend(_upload_option(upload) for upload in uploads.order_by("name", "-created_at"))
    return options


def find_start(owner: User, value: str) -> StartWeights | None:
    """The owner's option with this form value, or None (someone else's, gone, not ready)."""
    return next((option for option in start_options(owner) if option.value == value), None)


def _model_option(model: YoloModel, kind: str) -> StartWeights:
    key = getattr(model, WEIGHT_FIELDS[kind]).name or ""
    match = EPOCH_IN_KEY.search(key)
    if match:
        description = f"{kind} weights, epoch {int(match.group(1))}"
    else:  # the final best.pt a completed session publishes
        description = f"{kind} weights after {model.epochs_completed} epochs"
    return StartWeights(
        value=f"model:{model.uid}:{kind}",
        kind=StartKind.MODEL,
        key=key,
        architecture=model.architecture,
        task=task_of(model.architecture) or model.dataset.task,
        origin=model.name,
        description=description,
        class_count=len(model.dataset.class_names),
        parent=model,
    )


def _upload_option(upload: WeightsUpload) -> StartWeights:
    count = len(upload.class_names)
    return StartWeights(
        value=f"upload:{upload.uid}",
        kind=StartKind.UPLOAD,
        key=upload.weights.name or "",
        architecture=upload.architecture,
        task=upload.task,
        origin=upload.file_name,
        description=f"{upload.architecture}, {count} class{'es' if count != 1 else ''}",
        class_count=count,
    )


def start_key(model: YoloModel) -> str:
    return f"{model.storage_prefix}/start/weights.pt"


def create_model(owner: User, *, start: StartWeights | None, **fields: Any) -> YoloModel:
    """``catalogue.create_model`` plus, when ``start`` is given, the model's own copy of
    those weights and the record of where they came from (one transaction; the copy is
    removed if the model is not saved)."""
    with transaction.atomic():
        model = catalogue.create_model(owner, **fields)
        if start is None:
            return model
        key = start_key(model)
        try:
            try:
                with default_storage.open(start.key, "rb") as source:
                    storage_put(key, source)
            except FileNotFoundError as error:
                raise StartWeightsGone(f"{start.origin}'s {start.description} are gone; choose again.") from error
            model.start_kind = start.kind
            model.start_weights.name = key
            model.parent = start.parent
            model.start_origin = start.origin[:255]
            model.start_description = start.description[:200]
            model.pretrained = False
            model.save(
                update_fields=[
                    "start_kind",
                    "start_weights",
                    "parent",
                    "start_origin",
                    "start_description",
                    "pretrained",
                    "updated_at",
                ]
            )
        except BaseException:
            default_storage.delete(key)
            raise
    return model
