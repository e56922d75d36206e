"""What a session is expected to cost: the range the Start form shows, and the one a
session records when it starts (``TrainingSession.estimated_*_micros``), so the Billing
tab can set the estimate beside the final cost.

Epochs mode: the epochs left times an epoch's cost, an epoch lasting between the first
and third quartile of the newest similar epochs (same architecture and image size) on
the instance type, or half to one and a half times the type's reference figure when
none have run there. Timed mode: exactly the prepaid price.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from billing.services import epoch_cost_micros, timed_price_micros
from training.models import EpochRecord, InstanceType, TrainingSession, YoloModel

ESTIMATE_SAMPLE = 200


@dataclass(frozen=True)
class EpochSeconds:
    low: int
    high: int
    measured: bool  # from real epochs of similar models, or the type's reference figure


@dataclass(frozen=True)
class Estimate:
    low_micros: int
    high_micros: int
    exact: bool


def epoch_seconds_by_instance_type(model: YoloModel) -> dict[int, list[int]]:
    """Durations (ms) of the newest epochs of models like ``model``, per instance type id."""
    similar = (
        EpochRecord.objects.filter(
            session__instance_type__active=True,
            model__architecture=model.architecture,
            model__train_args__imgsz=model.train_args.get("imgsz"),
        )
        .order_by("-finished_at")
        .values_list("session__instance_type_id", "duration_ms")[:ESTIMATE_SAMPLE]
    )
    durations: dict[int, list[int]] = {}
    for instance_type_id, duration_ms in similar:
        durations.setdefault(instance_type_id, []).append(duration_ms)
    return durations


def epoch_seconds(instance_type: InstanceType, measured_ms: list[int]) -> EpochSeconds:
    if len(measured_ms) >= 2:
        quartiles = statistics.quantiles(measured_ms, n=4)
        low, high = round(quartiles[0] / 1000), round(quartiles[2] / 1000)
    elif measured_ms:
        low = high = round(measured_ms[0] / 1000)
    else:
        reference = instance_type.reference_epoch_seconds
        low, high = max(1, reference // 2), reference * 3 // 2
    return EpochSeconds(max(1, low), max(1, high), bool(measured_ms))


def estimate_cost(
    model: YoloModel,
    price_per_hour_micros: int,
    seconds: EpochSeconds,
    *,
    mode: str,
    target_epochs: int | None,
    time_budget_seconds: int | None,
) -> Estimate:
    if mode == TrainingSession.Mode.TIMED:
        exact = timed_price_micros(time_budget_seconds or 0, price_per_hour_micros)
        return Estimate(exact, exact, exact=True)
    epochs = max(0, (target_epochs or model.target_epochs) - model.epochs_completed)
    return Estimate(
        epochs * epoch_cost_micros(seconds.low * 1000, price_per_hour_micros),
        epochs * epoch_cost_micros(seconds.high * 1000, price_per_hour_micros),
        exact=False,
    )


def estimate_session(session: TrainingSession) -> Estimate:
    """The estimate for a session about to be created, as the Start form computes it."""
    model, instance_type = session.model, session.instance_type
    measured = epoch_seconds_by_instance_type(model).get(instance_type.pk, [])
    return estimate_cost(
        model,
        session.price_per_hour_micros,
        epoch_seconds(instance_type, measured),
        mode=session.mode,
        target_epochs=session.target_epochs,
        time_budget_seconds=session.time_budget_seconds,
    )
