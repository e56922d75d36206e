"""The training engine end to end: real broker, real worker processes, real
ultralytics training on the synthetic dataset at 64 px."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import connection

from hubsite.models import User
from tests.factories import cpu_instance, fund, instance_type, make_model, make_ready_dataset
from tests.helpers import WorkerFactory, wait_for
from training import sessions
from training.models import EpochRecord, TrainingSession, YoloModel
from training.presence import live_queues

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]

Status = TrainingSession.Status


def status_of(session: TrainingSession) -> str:
    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)


def wait_for_status(session: TrainingSession, *statuses: str, timeout: float = 180) -> TrainingSession:
    wait_for(lambda: status_of(session) in statuses, timeout=timeout, interval=0.2)
    return TrainingSession.objects.get(pk=session.pk)


def assert_history_is_continuous(model: YoloModel, epochs: int) -> None:
    recorded = list(EpochRecord.objects.filter(model=model).values_list("epoch", flat=True))
    assert recorded == list(range(1, epochs + 1))


def start(user: User, model: YoloModel, **kwargs: object) -> TrainingSession:
    return sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance(), **kwargs))  # type: ignore[arg-type]


def test_a_session_trains_to_completion_recording_each_epoch_once(
    user: User, tmp_path: Path, cpu_worker: object
) -> None:
    fund(user, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=3)
    session = start(user, model)

    session = wait_for_status(session, Status.COMPLETED, Status.FAILED)

    assert session.status == Status.COMPLETED, session.failure_reason
    model.refresh_from_db()
    assert model.epochs_completed == 3
    assert model.trained_at is not None
    assert_history_is_continuous(model, 3)
    for record in EpochRecord.objects.filter(model=model):
        assert record.session_id == session.pk
        assert record.duration_ms > 0
        assert {"precision", "recall", "map50", "map50_95", "train_box_loss", "val_box_loss", "lr"} <= set(
            record.metrics
        )
    best, last = model.best_weights.name or "", model.last_checkpoint.name or ""
    assert default_storage.exists(best)
    assert default_storage.exists(last)
    assert best.startswith(model.storage_prefix)
    assert "[hubsite] epoch 3/3 completed" in session.log_tail
    assert "\x1b[" not in session.log_tail  # colour codes stripped for the console


def test_stop_mid_epoch_then_resume_completes_every_epoch_exactly_once(
    user: User, tmp_path: Path, cpu_worker: object
) -> None:
    fund(user, as_adjustment=True)
    dataset = make_ready_dataset(user, tmp_path, train_images=96, val_images=8)
    model = make_model(user, dataset, epochs=4, batch=2, nbs=2)
    session = start(user, model)
    wait_for(lambda: EpochRecord.objects.filter(model=model).count() >= 1, timeout=180, interval=0.1)
    time.sleep(0.3)  # inside epoch 2

    asked = time.monotonic()
    assert sessions.request_stop(session) == Status.STOPPING
    session = wait_for_status(session, Status.STOPPED, Status.FAILED, timeout=5)
    assert time.monotonic() - asked < 5

    assert session.status == Status.STOPPED
    model.refresh_from_db()
    stopped_at = model.epochs_completed
    assert 1 <= stopped_at < 4
    assert_history_is_continuous(model, stopped_at)
    assert f"epoch-{stopped_at:04d}" in (model.last_checkpoint.name or "")

    resumed = sessions.resume_session(user, session, sessions.StartRequest(instance_type=cpu_instance()))
    assert resumed.start_epoch == stopped_at
    resumed = wait_for_status(resumed, Status.COMPLETED, Status.FAILED)

    assert resumed.status == Status.COMPLETED, resumed.failure_reason
    model.refresh_from_db()
    assert model.epochs_completed == 4
    assert_history_is_continuous(model, 4)
    assert set(EpochRecord.objects.filter(session=resumed).values_list("epoch", flat=True)) == set(
        range(stopped_at + 1, 5)
    )


def test_two_concurrent_starts_for_one_account_create_exactly_one_session(
    user: User, tmp_path: Path, cpu_worker: object
) -> None:
    fund(user, as_adjustment=True)
    dataset = make_ready_dataset(user, tmp_path)
    models = [make_model(user, dataset, epochs=1), make_model(user, dataset, epochs=1)]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def press_start(model: YoloModel) -> None:
        barrier.wait()
        try:
            start(user, model)
            outcomes.append("started")
        except sessions.StartRefused as refusal:
            outcomes.append(str(refusal))
        finally:
            connection.close()

    threads = [threading.Thread(target=press_start, args=(model,)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes)[-1] == "started"
    assert outcomes.count("started") == 1
    assert any("Another training session is active" in outcome for outcome in outcomes)
    assert TrainingSession.objects.filter(owner=user).count() == 1


def test_a_start_for_an_instance_type_without_a_live_worker_is_refused(
    user: User, tmp_path: Path, transactional_db: None
) -> None:
    fund(user, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=1)
    gpu = instance_type("a100-80gb")
    with pytest.raises(sessions.StartRefused, match="No A100 80GB worker is online"):
        sessions.start_session(user, model, sessions.StartRequest(instance_type=gpu))
    assert not TrainingSession.objects.exists()


def test_a_training_that_cannot_run_fails_with_its_reason_and_log(
    user: User, tmp_path: Path, cpu_worker: object
) -> None:
    fund(user, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=2, optimizer="NoSuchOptimizer")
    session = start(user, model)

    session = wait_for_status(session, Status.COMPLETED, Status.FAILED)

    assert session.status == Status.FAILED
    assert "NoSuchOptimizer" in session.failure_reason
    assert session.log_tail
    assert not EpochRecord.objects.filter(model=model).exists()


def test_two_training_workers_on_different_queues_train_at_once(
    user: User, outsider: User, tmp_path: Path, start_worker: WorkerFactory, fast_workers: dict[str, str]
) -> None:
    gpu = instance_type("rtx-4090")
    # Both workers run on this machine's CPU; what matters is that each one fetches
    # the dataset from storage into its own cache, not from the web server's disk.
    start_worker("train.cpu", extra_env={**fast_workers, "DATASET_CACHE_DIR": str(tmp_path / "cache-a")})
    start_worker("train.rtx-4090", extra_env={**fast_workers, "DATASET_CACHE_DIR": str(tmp_path / "cache-b")})
    wait_for(lambda: {"train.cpu", "train.rtx-4090"} <= live_queues(), timeout=20)
    fund(user, as_adjustment=True)
    fund(outsider, as_adjustment=True)
    first = start(user, make_model(user, make_ready_dataset(user, tmp_path / "a"), epochs=1))
    second = sessions.start_session(
        outsider,
        make_model(outsider, make_ready_dataset(outsider, tmp_path / "b"), epochs=1),
        sessions.StartRequest(instance_type=gpu),
    )

    for session in (first, second):
        finished = wait_for_status(session, Status.COMPLETED, Status.FAILED)
        assert finished.status == Status.COMPLETED, finished.failure_reason
    assert TrainingSession.objects.get(pk=first.pk).worker_id != TrainingSession.objects.get(pk=second.pk).worker_id
    assert (tmp_path / "cache-a").exists()
    assert (tmp_path / "cache-b").exists()
