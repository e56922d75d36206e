"""The prediction job, run by a worker on the ``predict`` queue: one picture through a
model's best weights, the drawn result and what was found written back to Redis for
the Predict tab to show (``training.predictions.store``)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings

from training.datasets import IMAGE_SUFFIXES, local_copy
from training.engine.runner import download
from training.models import YoloModel
from training.predictions import store, validation_samples
from training.predictions.store import Job
from training.yolo.predict import UnreadablePicture, predict

logger = logging.getLogger(__name__)

DEFAULT_IMGSZ = 640


class PredictionFailed(Exception):
    """Shown to the user as is."""


def run_prediction(token: str) -> None:
    job = store.claim(token)
    if job is None:  # expired while queued, or a redelivery
        return
    try:
        model = YoloModel.objects.select_related("dataset").get(pk=job.model_id, owner_id=job.owner_id)
        weights_key = model.best_weights.name or ""
        if not weights_key:
            raise PredictionFailed("This model has no weights yet.")
        picture = _picture(job, model)
        with tempfile.TemporaryDirectory(prefix="hubsite-predict-") as work:
            # A fixed file name: nothing the user typed (the model name) may appear in a path.
            result = predict(
                weights_key,
                lambda: download(weights_key, Path(work) / "best.pt"),
                picture,
                conf=job.conf,
                iou=job.iou,
                imgsz=int(model.train_args.get("imgsz", DEFAULT_IMGSZ)),
            )
    except YoloModel.DoesNotExist:
        store.fail(job, "This model no longer exists.")
    except PredictionFailed as failure:
        store.fail(job, str(failure))
    except UnreadablePicture:
        store.fail(job, "The picture could not be read: try another file.")
    except Exception as error:
        logger.exception("prediction %s failed", token)
        store.fail(job, f"The prediction failed: {error}")
    except BaseException:  # the actor's time limit, or the worker shutting down
        store.fail(job, "The prediction was interrupted (it took too long, or its worker stopped): try again.")
        raise
    else:
        store.finish(
            job,
            jpeg=result.jpeg,
            detections=result.detections,
            inference_ms=result.inference_ms,
            size=(result.width, result.height),
        )


def _picture(job: Job, model: YoloModel) -> bytes:
    kind, _, value = job.source.partition(":")
    if kind == "sample":
        return _validation_picture(model, int(value))
    data = store.picture_bytes(job.owner_id, job.model_id, job.source)
    if data is None:
        raise PredictionFailed("The picture is no longer kept: upload it again.")
    return data


def _validation_picture(model: YoloModel, index: int) -> bytes:
    """The dataset's validation picture behind sample ``index``, from this worker's cached copy."""
    names = [sample.get("name") for sample in validation_samples(model) if sample.get("index") == index]
    if not names:
        raise PredictionFailed("That validation picture is not one of this dataset's.")
    with local_copy(model.dataset, settings.DATASET_CACHE_DIR) as data:
        root = data.parent / "content" if data.is_file() else data
        for path in root.rglob("*"):
            if path.name == names[0] and "val" in path.relative_to(root).parts and _is_picture(path):
                if path.stat().st_size > settings.PREDICT_MAX_UPLOAD_BYTES:
                    raise PredictionFailed("That validation picture is larger than the upload limit.")
                return path.read_bytes()
    raise PredictionFailed("That validation picture is no longer in the dataset.")


def _is_picture(path: Path) -> bool:
    return path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_SUFFIXES
