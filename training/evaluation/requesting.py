"""Asking for a model's evaluation, and giving up one lost with its worker.

The evaluation itself runs on a light worker (``training.engine.evaluation``); this
module records the request on the model's one ``ModelEvaluation`` row and queues it
by actor name on commit, so the web process never imports the worker's code. It is
never billed: no hold, no charge, whatever it costs the worker.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from hubsite.jobs import LIGHT_QUEUE, send_by_name_on_commit
from training.models import ModelEvaluation, TrainingSession, YoloModel

logger = logging.getLogger(__name__)

EVALUATE_MODEL_ACTOR = "evaluate_model"
EVALUATION_TIME_LIMIT_MS = 30 * 60 * 1000
# As for dataset validation (training/datasets/task.py): an evaluation still waiting or
# running this long after it was asked for was lost with its worker, or stopped by the
# time limit (not an Exception, so the job cannot record it). The margin covers a queue wait.
LOST_EVALUATION_AFTER = timedelta(milliseconds=EVALUATION_TIME_LIMIT_MS) + timedelta(minutes=30)
LOST_EVALUATION_MESSAGE = (
    "The evaluation did not finish (the worker stopped, or it ran past its time limit). Evaluate again; "
    "if it keeps failing, the validation split may be too large to evaluate here."
)
UNFINISHED = (ModelEvaluation.Status.PENDING, ModelEvaluation.Status.RUNNING)


class EvaluationRefused(Exception):
    """The evaluation cannot be asked for now; the message says why in plain words."""


def request_evaluation(model: YoloModel) -> ModelEvaluation:
    """Queue an evaluation of the model's current best weights, replacing the previous
    one; an evaluation already waiting or running is returned as it is."""
    if not model.best_weights:
        raise EvaluationRefused("There are no weights to evaluate yet: the first epoch must complete first.")
    with transaction.atomic():
        evaluation, created = ModelEvaluation.objects.select_for_update().get_or_create(
            model=model, defaults={"task": model.dataset.task, "weights_epoch": model.epochs_completed}
        )
        if not created:
            if evaluation.status in UNFINISHED:
                return evaluation
            _reset(evaluation, model)
        send_by_name_on_commit(EVALUATE_MODEL_ACTOR, LIGHT_QUEUE, evaluation.pk)
    return evaluation


def evaluate_now(model: YoloModel) -> ModelEvaluation:
    """ "Evaluate now" on the Evaluation tab: refused while a session trains the model
    (it is evaluated when the session ends)."""
    if model.sessions.filter(status__in=TrainingSession.ACTIVE_STATUSES).exists():
        raise EvaluationRefused("The model is training: it is evaluated when the session ends.")
    return request_evaluation(model)


def _reset(evaluation: ModelEvaluation, model: YoloModel) -> None:
    evaluation.status = ModelEvaluation.Status.PENDING
    evaluation.task = model.dataset.task
    evaluation.weights_epoch = model.epochs_completed
    evaluation.error = ""
    evaluation.requested_at = timezone.now()
    evaluation.started_at = evaluation.finished_at = None
    evaluation.save(
        update_fields=["status", "task", "weights_epoch", "error", "requested_at", "started_at", "finished_at"]
    )


def evaluate_new_weights(session_id: int) -> ModelEvaluation | None:
    """At the end of a session: evaluate the model if its best weights are newer than
    its evaluation (or it has none). Called inside the transaction that ends the
    session, so the message leaves only if that commits; in a savepoint of its own, so
    an evaluation that cannot be asked for never keeps the session from ending."""
    try:
        with transaction.atomic():
            return _evaluate_if_outdated(session_id)
    except Exception:
        logger.exception("could not ask for an evaluation at the end of session %s", session_id)
        return None


def _evaluate_if_outdated(session_id: int) -> ModelEvaluation | None:
    model = (
        YoloModel.objects.select_related("dataset")
        .filter(pk=TrainingSession.objects.filter(pk=session_id).values("model_id")[:1])
        .first()
    )
    if model is None or not model.best_weights:
        return None
    evaluated = ModelEvaluation.objects.filter(model=model).values_list("weights_epoch", flat=True).first()
    if evaluated is not None and evaluated >= model.epochs_completed:
        return None
    return request_evaluation(model)


def give_up_lost_evaluations() -> int:
    """Mark evaluations lost with their worker failed, saying so; returns how many.
    A periodic job on light workers (training/apps.py); one conditional UPDATE."""
    now = timezone.now()
    return ModelEvaluation.objects.filter(status__in=UNFINISHED, requested_at__lt=now - LOST_EVALUATION_AFTER).update(
        status=ModelEvaluation.Status.FAILED, error=LOST_EVALUATION_MESSAGE, finished_at=now
    )


def picture_key(model: YoloModel, batch: int, kind: str) -> str:
    """Where a validation picture is stored: the model's prefix and a fixed name
    (``kind`` is "labels" or "predictions"), never user text."""
    return f"{model.storage_prefix}/evaluation/batch{batch}-{kind}.jpg"
