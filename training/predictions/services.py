"""What the Predict tab's views call: start a prediction on an uploaded picture or on
one of the dataset's validation pictures, run it again with other thresholds, find a
user's prediction, and save or delete a drawn result.

The prediction itself runs on a worker that consumes the ``predict`` queue
(``training.engine.predictions``); it is sent by actor name, so the web process never
imports the worker's code."""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from hubsite.jobs import send_by_name_on_commit
from hubsite.models import User
from training.models import SavedPrediction, YoloModel
from training.predictions import store
from training.predictions.pictures import PictureRefused, check_picture
from training.predictions.store import Job

PREDICT_ACTOR = "predict_picture"
PREDICT_QUEUE = "predict"
DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
MAX_SAVED_PER_MODEL = 50


class PredictionRefused(Exception):
    """Said to the user as is; nothing was stored or sent."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def validation_samples(model: YoloModel) -> list[dict[str, Any]]:
    """The dataset's validation pictures that validation kept as samples (thumbnails with
    their labels drawn), the ones a user may pick instead of uploading."""
    samples = model.dataset.stats.get("samples", []) if isinstance(model.dataset.stats, dict) else []
    return [sample for sample in samples if isinstance(sample, dict) and sample.get("split") == "val"]


def predict_upload(owner: User, model: YoloModel, data: bytes, *, conf: float, iou: float) -> Job:
    _require_weights(model)
    try:
        check_picture(data)
    except PictureRefused as refused:
        raise PredictionRefused(str(refused)) from None
    return _start(owner, model, store.put_picture(owner.pk, model.pk, data), conf=conf, iou=iou)


def predict_sample(owner: User, model: YoloModel, index: int, *, conf: float, iou: float) -> Job:
    _require_weights(model)
    if not any(sample.get("index") == index for sample in validation_samples(model)):
        raise PredictionRefused("That validation picture is not one of this dataset's.")
    return _start(owner, model, f"sample:{index}", conf=conf, iou=iou)


def predict_again(owner: User, model: YoloModel, job: Job, *, conf: float, iou: float) -> Job:
    """The same picture with other thresholds."""
    _require_weights(model)
    if job.source.startswith("picture:") and store.picture_bytes(owner.pk, model.pk, job.source) is None:
        raise PredictionRefused("The picture is no longer kept: upload it again.", status=409)
    return _start(owner, model, job.source, conf=conf, iou=iou)


def job_for(owner: User, model: YoloModel, token: str) -> Job | None:
    """The prediction ``token`` if it is this owner's, on this model, and still kept."""
    job = store.get_job(token)
    if job is None or job.owner_id != owner.pk or job.model_id != model.pk:
        return None
    return job


def save_prediction(model: YoloModel, job: Job) -> SavedPrediction:
    """Keep a finished prediction's drawn picture and detections with the model."""
    jpeg = store.result_image(job.token) if job.status == store.Status.DONE else None
    if jpeg is None:
        raise PredictionRefused("This prediction is no longer kept: run it again to save it.", status=409)
    if model.saved_predictions.count() >= MAX_SAVED_PER_MODEL:
        raise PredictionRefused(f"A model keeps at most {MAX_SAVED_PER_MODEL} saved predictions: delete one first.")
    with transaction.atomic():
        saved = SavedPrediction.objects.create(
            model=model,
            source=_source_in_words(model, job.source),
            conf=job.conf,
            iou=job.iou,
            inference_ms=job.inference_ms or 0.0,
            detections=job.detections,
        )
        # A fixed name under the model's prefix: nothing the user typed becomes a path.
        saved.image.name = default_storage.save(f"{model.storage_prefix}/predictions/{saved.pk}.jpg", ContentFile(jpeg))
        saved.save(update_fields=["image"])
    return saved


def delete_saved(saved: SavedPrediction) -> None:
    name = saved.image.name
    saved.delete()
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))


def _source_in_words(model: YoloModel, source: str) -> str:
    kind, _, value = source.partition(":")
    if kind == "sample":
        for sample in validation_samples(model):
            if str(sample.get("index")) == value:
                return f"validation picture {sample.get('name', value)}"[:200]
    return "uploaded picture"


def _require_weights(model: YoloModel) -> None:
    if not model.best_weights:
        raise PredictionRefused("This model has no weights yet: the first epoch must complete first.", status=409)


def _start(owner: User, model: YoloModel, source: str, *, conf: float, iou: float) -> Job:
    job = store.create_job(owner.pk, model.pk, source, conf=conf, iou=iou)
    if job is None:
        raise PredictionRefused("A prediction with this model is still running: wait for it to finish.", status=409)
    send_by_name_on_commit(PREDICT_ACTOR, PREDICT_QUEUE, job.token)
    return job
