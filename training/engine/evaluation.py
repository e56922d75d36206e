"""The evaluation job, run by a light worker: the model's best weights validated on
its dataset's validation split, the figures written to its ``ModelEvaluation`` and the
validation pictures stored under the model's prefix. Never billed."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from training.datasets import DatasetError, local_copy, storage_put
from training.engine.runner import download
from training.evaluation import picture_key
from training.models import ModelEvaluation, YoloModel
from training.yolo.evaluation import Evaluated, Picture, UnreadableWeights, evaluate

logger = logging.getLogger(__name__)

Status = ModelEvaluation.Status


def run_evaluation(evaluation_id: int) -> None:
    """Claim a waiting evaluation and run it (a redelivered message finds it claimed and
    does nothing); any error leaves it failed with a plain message."""
    claimed = ModelEvaluation.objects.filter(pk=evaluation_id, status=Status.PENDING).update(
        status=Status.RUNNING, started_at=timezone.now(), error=""
    )
    if not claimed:
        return
    evaluation = ModelEvaluation.objects.select_related("model__dataset").get(pk=evaluation_id)
    model = evaluation.model
    work_dir = Path(tempfile.mkdtemp(prefix="hubsite-evaluation-"))
    try:
        evaluated = _evaluate(model, work_dir)
        pictures = _store_pictures(model, evaluated.pictures)
        ModelEvaluation.objects.filter(pk=evaluation_id, status=Status.RUNNING).update(
            status=Status.DONE,
            task=model.dataset.task,
            weights_epoch=model.epochs_completed,
            metrics=evaluated.metrics,
            per_class=evaluated.per_class,
            curves=evaluated.curves,
            confusion=evaluated.confusion,
            pictures=pictures,
            finished_at=timezone.now(),
        )
    except Exception as error:
        logger.exception("evaluation %s failed", evaluation_id)
        ModelEvaluation.objects.filter(pk=evaluation_id, status=Status.RUNNING).update(
            status=Status.FAILED, error=failure_message(error, work_dir), finished_at=timezone.now()
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _evaluate(model: YoloModel, work_dir: Path) -> Evaluated:
    if not model.best_weights:
        raise EvaluationError("The model has no best weights any more.")
    # A fixed file name: nothing the user typed (the model name) may appear in a path.
    weights = download(model.best_weights.name or "", work_dir / "best.pt")
    with local_copy(model.dataset, Path(settings.DATASET_CACHE_DIR)) as data:
        return evaluate(weights, data, int(model.train_args.get("imgsz", 640)), work_dir)


def _store_pictures(model: YoloModel, pictures: list[Picture]) -> list[str]:
    keys: list[str] = []
    for picture in pictures:
        for kind, path in (("labels", picture.labels), ("predictions", picture.predictions)):
            with path.open("rb") as handle:
                keys.append(storage_put(picture_key(model, picture.batch, kind), handle))
    return keys


class EvaluationError(Exception):
    """The evaluation cannot run; the message says why in plain words."""


def failure_message(error: Exception, work_dir: Path) -> str:
    """The failure in plain words, without the worker's temporary paths."""
    if isinstance(error, EvaluationError | DatasetError | UnreadableWeights):
        detail = str(error)
    elif isinstance(error, FileNotFoundError):
        detail = "the model's weights or dataset are no longer in storage"
    else:
        detail = str(error).replace(str(work_dir), "") or type(error).__name__
    return f"The evaluation failed: {detail}"[:1000]
