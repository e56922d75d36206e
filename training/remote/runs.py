"""Remote training: a run on the user's own machine reporting through ultralytics'
platform callbacks (``ultralytics/utils/callbacks/platform.py``). This module is the
service side of its events; ``api.platform.remote`` is the HTTP side.

A remote session is a ``TrainingSession`` with ``remote=True`` on the inactive,
free "Your hardware" instance type: no hold, no charge, no ledger line, outside the
concurrent-session limit, no worker (the reaper skips it; ``silence`` ends one that
went quiet). It starts in ``training``; every status change still goes through
``training.sessions.transitions.transition``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from hubsite.models import User
from training import task_metrics
from training.datasets.uri import SCHEME, find_dataset_by_uri
from training.models import Dataset, EpochRecord, InstanceType, TrainingSession, YoloModel
from training.remote.errors import RemoteRefused
from training.sessions.settling import end_session
from training.sessions.transitions import Status

YOUR_HARDWARE_SLUG = "your-hardware"
ENDABLE = (Status.TRAINING, Status.STOPPING)
ARCHITECTURE_MAX = 40
NAME_MAX = 100
DETAIL_MAX = 200
ENVIRONMENT_FIELDS = ("hostname", "gpuType", "gpuCount", "ultralyticsVersion", "os", "pythonVersion", "cpu")


def your_hardware() -> InstanceType:
    instance_type, _ = InstanceType.objects.get_or_create(
        slug=YOUR_HARDWARE_SLUG,
        defaults={"name": "Your hardware", "gpu": "Your own machine", "price_per_hour_micros": 0, "active": False},
    )
    return instance_type


def architecture_of(model_arg: str) -> str:
    """A model YAML's or weights file's stem from the client's ``model`` argument."""
    stem = PurePosixPath(model_arg.replace("\\", "/")).name
    for suffix in (".yaml", ".yml", ".pt"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^a-z0-9._-]", "", stem.lower())[:ARCHITECTURE_MAX] or "unknown"


def task_of(train_args: Mapping[str, Any]) -> str:
    task = str(train_args.get("task", ""))
    return task if task in Dataset.Task.values else Dataset.Task.DETECT


def _int_arg(train_args: Mapping[str, Any], key: str) -> int | None:
    try:
        return int(str(train_args.get(key)))
    except ValueError:
        return None


def unique_model_name(owner: User, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... the first that none of the owner's models has."""
    base = base[: NAME_MAX - 6] or "train"
    taken = set(YoloModel.objects.filter(owner=owner, name__startswith=base).values_list("name", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def dataset_for(owner: User, data_arg: str, task: str) -> Dataset:
    """``ul://`` names one of the owner's datasets here; anything else is a dataset on
    the user's machine, kept as a row with status ``on_machine`` (no archive, never
    startable in the cloud) named after the file, never used as a path."""
    if data_arg.startswith(SCHEME):
        dataset = find_dataset_by_uri(owner, data_arg)
        if dataset is None:
            raise RemoteRefused(404, "dataset_not_found", f"No dataset of yours is named {data_arg[:200]}.")
        return dataset
    parts = PurePosixPath(data_arg.replace("\\", "/")).parts[-2:]
    name = ("/".join(parts) or "local dataset")[:NAME_MAX]
    dataset = Dataset.objects.filter(owner=owner, name=name, task=task, status=Dataset.Status.ON_MACHINE).first()
    return dataset or Dataset.objects.create(
        owner=owner, name=name, task=task, declared_task=task, status=Dataset.Status.ON_MACHINE
    )


def environment_of(data: Mapping[str, Any]) -> dict[str, Any]:
    reported = data.get("environment")
    environment = {
        key: str(reported[key])[:200] for key in ENVIRONMENT_FIELDS if isinstance(reported, dict) and key in reported
    }
    if data.get("device") is not None:
        environment["device"] = str(data["device"])[:80]
    return environment


def start_run(owner: User, data: Mapping[str, Any], project: str, name: str, model_uid: str | None) -> TrainingSession:
    """``training_started``: a new session on a new model, or (ultralytics resume,
    ``model_uid``) on the owner's model a remote run created."""
    train_args = data.get("trainArgs")
    if not isinstance(train_args, dict):
        raise RemoteRefused(400, "invalid", "data.trainArgs must be an object.")
    epochs = data.get("epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or not 0 < epochs <= 100_000:
        raise RemoteRefused(400, "invalid", "data.epochs must be a positive whole number.")
    environment = environment_of(data)
    with transaction.atomic():
        if model_uid is not None:
            model = find_model(owner, model_uid, lock=True)
            _end_stale_remote_session(model)
        else:
            task = task_of(train_args)
            dataset = dataset_for(owner, str(train_args.get("data", "")), task)
            arguments = {"epochs": epochs}
            arguments.update({key: value for key in ("imgsz", "batch") if (value := _int_arg(train_args, key))})
            model = YoloModel.objects.create(
                owner=owner,
                name=unique_model_name(owner, f"{project}/{name}" if project else name),
                dataset=dataset,
                architecture=architecture_of(str(train_args.get("model", ""))),
                train_args=arguments,
            )
        now = timezone.now()
        host = environment.get("hostname", "your machine")
        try:
            with transaction.atomic():
                return TrainingSession.objects.create(
                    model=model,
                    owner=owner,
                    instance_type=your_hardware(),
                    price_per_hour_micros=0,
                    target_epochs=epochs,
                    start_epoch=model.epochs_completed,
                    status=Status.TRAINING,
                    status_detail=f"Training on your hardware ({host})"[:DETAIL_MAX],
                    remote=True,
                    remote_environment=environment,
                    claimed_at=now,
                    training_started_at=now,
                    heartbeat_at=now,
                )
        except IntegrityError as error:
            raise RemoteRefused(409, "model_busy", "This model is training in the cloud now; stop it first.") from error


def _end_stale_remote_session(model: YoloModel) -> None:
    """A resumed run replaces the remote session its crashed predecessor left active."""
    for session_id in model.sessions.filter(remote=True, status__in=ENDABLE).values_list("pk", flat=True):
        end_session(
            session_id,
            ENDABLE,
            Status.FAILED,
            detail="Replaced by a resumed run",
            reason="The run on your machine restarted; it continues in a new session.",
        )


def find_model(owner: User, model_uid: str, *, lock: bool = False) -> YoloModel:
    """The owner's model with this uid; any other is the same 404 as a missing one."""
    query = YoloModel.objects.filter(owner=owner, uid=model_uid) if _is_uuid(model_uid) else YoloModel.objects.none()
    model = (query.select_for_update() if lock else query).first()
    if model is None:
        raise RemoteRefused(404, "model_not_found", "No such model, or it is not yours.")
    return model


def _is_uuid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", value))


def find_session(model: YoloModel, run_id: object = None) -> TrainingSession:
    """The remote session an event is about: ``run_id`` when the event names one,
    else the model's newest remote session (epoch_end and console events name none)."""
    sessions = model.sessions.filter(remote=True)
    if run_id is not None:
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise RemoteRefused(400, "invalid", "runId must be a whole number.")
        sessions = sessions.filter(pk=run_id)
    session = sessions.order_by("-created_at", "-pk").first()
    if session is None:
        raise RemoteRefused(404, "run_not_found", "This model has no such run from your machine.")
    return session


def touch(session: TrainingSession) -> None:
    """Any event of an active session is a sign of life."""
    TrainingSession.objects.filter(pk=session.pk, status__in=ENDABLE).update(heartbeat_at=timezone.now())


def cancelled(session: TrainingSession) -> bool:
    """The control answer: stop the run when Stop was asked or the session is over."""
    status = TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)
    return status != Status.TRAINING


def record_epoch(session: TrainingSession, data: Mapping[str, Any]) -> bool:
    """``epoch_end`` (0-based ``epoch``): one EpochRecord per model and epoch, its
    figures appended to ``epoch_series`` in the same transaction, as the cloud
    committer does. False for an epoch already recorded. Recorded even when it comes
    after the run ended (the client sends it from a thread pool)."""
    epoch = data.get("epoch")
    raw = data.get("metrics")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 100_000:
        raise RemoteRefused(400, "invalid", "data.epoch must be a whole number from 0.")
    if not isinstance(raw, dict):
        raise RemoteRefused(400, "invalid", "data.metrics must be an object.")
    number = epoch + 1
    metrics = task_metrics.stored_metrics(raw)
    now = timezone.now()
    with transaction.atomic():
        model = YoloModel.objects.select_for_update().get(pk=session.model_id)
        if EpochRecord.objects.filter(model=model, epoch=number).exists():
            return False
        if _is_final_evaluation(session, model, number, metrics):
            return False
        _forget_final_evaluation_recorded_early(model, number, metrics)
        started_at = _previous_event_time(session)
        duration_ms = max(1, int((now - started_at).total_seconds() * 1000))
        EpochRecord.objects.create(
            session=session,
            model=model,
            epoch=number,
            started_at=started_at,
            finished_at=now,
            duration_ms=duration_ms,
            metrics=metrics,
        )
        figures = task_metrics.series_figures(model.dataset.task, metrics)
        model.epoch_series = sorted([*model.epoch_series, [number, duration_ms, figures]], key=lambda row: row[0])
        model.epochs_completed = max(model.epochs_completed, number)
        model.trained_at = now
        model.save(update_fields=["epoch_series", "epochs_completed", "trained_at", "updated_at"])
    return True


def _training_figures(metrics: Mapping[str, float]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if key.startswith("train_") or key == "lr"}


def _is_final_evaluation(session: TrainingSession, model: YoloModel, number: int, metrics: dict[str, float]) -> bool:
    """ultralytics' ``final_eval`` validates the best weights after the last epoch and
    reports them as one more epoch_end, "at step epochs+1", with the last epoch's
    training losses and learning rate unchanged. That is no epoch: it is known by its
    number past the run's epochs, or by training figures equal to the epoch before."""
    if number > session.target_epochs:
        return True
    figures = _training_figures(metrics)
    previous = EpochRecord.objects.filter(model=model, epoch=number - 1, session=session).first()
    return bool(figures) and previous is not None and _training_figures(previous.metrics) == figures


def _forget_final_evaluation_recorded_early(model: YoloModel, number: int, metrics: dict[str, float]) -> None:
    """The client sends epoch_end from a thread pool: the final evaluation's report may
    have come before the last epoch's. Recording that epoch unmasks it: delete it."""
    figures = _training_figures(metrics)
    following = EpochRecord.objects.filter(model=model, epoch=number + 1).first()
    if not figures or following is None or _training_figures(following.metrics) != figures:
        return
    following.delete()
    model.epoch_series = [row for row in model.epoch_series if row[0] != number + 1]
    model.epochs_completed = max((row[0] for row in model.epoch_series), default=0)


def _previous_event_time(session: TrainingSession) -> datetime:
    last = session.epochs.order_by("-finished_at").values_list("finished_at", flat=True).first()
    return last or session.training_started_at or session.created_at


def complete_run(session: TrainingSession, data: Mapping[str, Any]) -> str:
    """``training_complete``: end the session completed, or stopped if Stop was asked.
    Returns the status it ended in (or is in, when it had already ended)."""
    results = data.get("results") if isinstance(data.get("results"), dict) else {}
    assert isinstance(results, dict)
    best_epoch = results.get("bestEpoch")
    detail = "Completed on your hardware"
    if isinstance(best_epoch, int) and not isinstance(best_epoch, bool):
        detail += f"; best epoch {best_epoch + 1}"
    if end_session(session.pk, (Status.TRAINING,), Status.COMPLETED, detail=detail):
        return Status.COMPLETED
    end_session(session.pk, (Status.STOPPING,), Status.STOPPED, detail="Stopped on your hardware")
    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)


def fail_run(session: TrainingSession, data: Mapping[str, Any]) -> None:
    """``training_failed``: end the session failed, with the reason the client gave."""
    reason = str(data.get("error") or "The run on your machine failed.")[:2000]
    end_session(session.pk, ENDABLE, Status.FAILED, detail="Failed on your hardware", reason=reason)
