"""Asking for an evaluation: refused without weights, queued by name once the
transaction commits, one per model (a new one replaces the finished one), asked for
by every session that ends with new weights, and given up when lost with its worker."""

from __future__ import annotations

import json
from datetime import timedelta

import dramatiq
import pytest
import redis
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from hubsite.jobs import LIGHT_QUEUE
from hubsite.models import User
from tests.factories import WORKER, make_model, make_session
from training import sessions
from training.engine.actors import evaluate_model
from training.evaluation import (
    EVALUATE_MODEL_ACTOR,
    EVALUATION_TIME_LIMIT_MS,
    LOST_EVALUATION_AFTER,
    LOST_EVALUATION_MESSAGE,
    EvaluationRefused,
    evaluate_now,
    give_up_lost_evaluations,
    request_evaluation,
    requesting,
)
from training.models import ModelEvaluation, TrainingSession, YoloModel

pytestmark = pytest.mark.django_db(transaction=True)  # messages leave on commit

Status = ModelEvaluation.Status


def queued_evaluations(redis_client: redis.Redis) -> list[tuple[str, list[int]]]:
    namespace = dramatiq.get_broker().namespace  # type: ignore[attr-defined]
    bodies = [json.loads(body) for body in redis_client.hvals(f"{namespace}:{LIGHT_QUEUE}.msgs")]
    return [(body["actor_name"], body["args"]) for body in bodies if body["actor_name"] == EVALUATE_MODEL_ACTOR]


def with_weights(model: YoloModel, epochs: int = 2) -> YoloModel:
    model.best_weights.name = default_storage.save(f"{model.storage_prefix}/best.pt", ContentFile(b"weights"))
    model.epochs_completed = epochs
    model.save()
    return model


def test_the_evaluation_actor_answers_to_the_name_sent_and_never_retries() -> None:
    actor = dramatiq.get_broker().get_actor(EVALUATE_MODEL_ACTOR)
    assert actor is evaluate_model
    assert actor.queue_name == LIGHT_QUEUE
    assert (actor.options["time_limit"], actor.options["max_retries"]) == (EVALUATION_TIME_LIMIT_MS, 0)


def test_a_model_without_weights_is_refused_and_nothing_is_queued(user: User, redis_client: redis.Redis) -> None:
    model = make_model(user)

    with pytest.raises(EvaluationRefused, match="no weights to evaluate yet"):
        request_evaluation(model)

    assert not ModelEvaluation.objects.exists()
    assert queued_evaluations(redis_client) == []


def test_an_evaluation_is_queued_by_name_only_once_the_transaction_commits(
    user: User, redis_client: redis.Redis
) -> None:
    model = with_weights(make_model(user), epochs=3)

    with transaction.atomic():
        evaluation = request_evaluation(model)
        assert queued_evaluations(redis_client) == []

    assert queued_evaluations(redis_client) == [(EVALUATE_MODEL_ACTOR, [evaluation.pk])]
    assert (evaluation.status, evaluation.weights_epoch, evaluation.task) == (Status.PENDING, 3, model.dataset.task)


def test_asking_again_while_one_waits_queues_nothing_more(user: User, redis_client: redis.Redis) -> None:
    model = with_weights(make_model(user))
    first = request_evaluation(model)

    assert request_evaluation(model).pk == first.pk
    assert len(queued_evaluations(redis_client)) == 1


def test_a_finished_evaluation_is_reset_and_queued_again(user: User, redis_client: redis.Redis) -> None:
    model = with_weights(make_model(user), epochs=2)
    evaluation = request_evaluation(model)
    ModelEvaluation.objects.filter(pk=evaluation.pk).update(
        status=Status.FAILED,
        error="It broke.",
        finished_at=timezone.now(),
        requested_at=timezone.now() - timedelta(days=1),
    )
    YoloModel.objects.filter(pk=model.pk).update(epochs_completed=5)
    model.refresh_from_db()

    again = request_evaluation(model)

    again.refresh_from_db()
    assert again.pk == evaluation.pk
    assert (again.status, again.error, again.weights_epoch, again.finished_at) == (Status.PENDING, "", 5, None)
    assert again.requested_at > timezone.now() - timedelta(minutes=1)
    assert len(queued_evaluations(redis_client)) == 2


def test_evaluate_now_is_refused_while_a_session_trains_the_model(user: User, redis_client: redis.Redis) -> None:
    model = with_weights(make_model(user))
    make_session(user, model=model)

    with pytest.raises(EvaluationRefused, match="evaluated when the session ends"):
        evaluate_now(model)
    assert queued_evaluations(redis_client) == []


@pytest.mark.parametrize(
    "status", [TrainingSession.Status.COMPLETED, TrainingSession.Status.STOPPED, TrainingSession.Status.FAILED]
)
def test_a_session_that_ends_with_new_weights_asks_for_an_evaluation(
    user: User, redis_client: redis.Redis, status: str
) -> None:
    model = with_weights(make_model(user), epochs=4)
    session = make_session(user, model=model)

    assert sessions.finish(session.pk, WORKER, status)

    evaluation = ModelEvaluation.objects.get(model=model)
    assert (evaluation.status, evaluation.weights_epoch) == (Status.PENDING, 4)
    assert queued_evaluations(redis_client) == [(EVALUATE_MODEL_ACTOR, [evaluation.pk])]


def test_a_paused_session_asks_for_one_too_and_the_next_end_only_if_weights_changed(
    user: User, redis_client: redis.Redis
) -> None:
    model = with_weights(make_model(user), epochs=2)
    first = make_session(user, model=model)
    assert sessions.finish(first.pk, WORKER, TrainingSession.Status.PAUSED)
    evaluation = ModelEvaluation.objects.get(model=model)
    ModelEvaluation.objects.filter(pk=evaluation.pk).update(status=Status.DONE)

    unchanged = make_session(user, model=model)
    assert sessions.finish(unchanged.pk, WORKER, TrainingSession.Status.COMPLETED)
    assert ModelEvaluation.objects.get(pk=evaluation.pk).status == Status.DONE  # same weights: not again

    YoloModel.objects.filter(pk=model.pk).update(epochs_completed=3)
    trained = make_session(user, model=model)
    assert sessions.finish(trained.pk, WORKER, TrainingSession.Status.COMPLETED)
    assert ModelEvaluation.objects.get(pk=evaluation.pk).status == Status.PENDING
    assert len(queued_evaluations(redis_client)) == 2


def test_a_session_that_ends_without_weights_asks_for_nothing(user: User, redis_client: redis.Redis) -> None:
    session = make_session(user)

    assert sessions.finish(session.pk, WORKER, TrainingSession.Status.FAILED, reason="no epoch")

    assert not ModelEvaluation.objects.exists()
    assert queued_evaluations(redis_client) == []


def test_a_session_ends_even_when_its_evaluation_cannot_be_asked_for(
    user: User, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = with_weights(make_model(user))
    session = make_session(user, model=model)

    def broken(model: YoloModel) -> ModelEvaluation:
        ModelEvaluation.objects.create(model=model, task="detect")  # rolled back with the savepoint
        raise RuntimeError("the database refused")

    monkeypatch.setattr(requesting, "request_evaluation", broken)

    assert sessions.finish(session.pk, WORKER, TrainingSession.Status.COMPLETED)

    assert TrainingSession.objects.get(pk=session.pk).status == TrainingSession.Status.COMPLETED
    assert not ModelEvaluation.objects.exists()
    assert queued_evaluations(redis_client) == []


def test_an_evaluation_lost_with_its_worker_fails_saying_why(user: User) -> None:
    long_ago = timezone.now() - LOST_EVALUATION_AFTER - timedelta(minutes=1)
    lost_waiting, lost_running, recent, done = (with_weights(make_model(user)) for _ in range(4))
    for model, status in ((lost_waiting, Status.PENDING), (lost_running, Status.RUNNING), (done, Status.DONE)):
        ModelEvaluation.objects.create(model=model, task="detect", status=status)
        ModelEvaluation.objects.filter(model=model).update(requested_at=long_ago)
    ModelEvaluation.objects.create(model=recent, task="detect", status=Status.RUNNING)

    assert give_up_lost_evaluations() == 2

    for model in (lost_waiting, lost_running):
        evaluation = ModelEvaluation.objects.get(model=model)
        assert (evaluation.status, evaluation.error) == (Status.FAILED, LOST_EVALUATION_MESSAGE)
        assert evaluation.finished_at is not None
    assert ModelEvaluation.objects.get(model=recent).status == Status.RUNNING
    assert ModelEvaluation.objects.get(model=done).status == Status.DONE
    assert give_up_lost_evaluations() == 0


def test_the_give_up_job_is_registered_as_a_periodic_job() -> None:
    from hubsite.jobs import periodic_jobs

    assert "training.give_up_lost_evaluations" in {job.name for job in periodic_jobs()}
