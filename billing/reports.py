"""What a model cost, per session and per epoch, and the account statement.

Read-only: reports add up ledger lines, they never write any. A model's total is
what its sessions took from the balance: epoch charges and prepayments, less
refunds and write-offs. The cost report CSV lists exactly those lines (plus the
epochs of Timed sessions at zero, "recorded against the prepayment"), so its
``amount_usd`` column sums to the total, to the micro-dollar.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import Account, LedgerLine
from billing.money import usd_amount
from training.models import EpochRecord, TrainingSession, YoloModel

Kind = LedgerLine.Kind
MODEL_KINDS = (Kind.EPOCH_CHARGE, Kind.WRITE_OFF, Kind.TIMED_PREPAYMENT, Kind.TIMED_REFUND)
PREPAID_EPOCH = "prepaid_epoch"

COST_REPORT_HEADER = (
    "timestamp_utc",
    "session",
    "epoch",
    "instance",
    "rate_per_hour_usd",
    "seconds",
    "amount_usd",
    "kind",
    "balance_after_usd",
    "reference",
)
STATEMENT_HEADER = (
    "timestamp_utc",
    "kind",
    "amount_usd",
    "balance_after_usd",
    "session",
    "epoch",
    "reference",
    "reason",
)


@dataclass(frozen=True)
class SessionCost:
    session: TrainingSession
    runtime_ms: int
    epochs: int
    price_micros: int

    @property
    def runtime_seconds(self) -> int:
        return self.runtime_ms // 1000


@dataclass(frozen=True)
class ModelBilling:
    model: YoloModel
    sessions: list[SessionCost]
    total_micros: int


def model_billing(model: YoloModel) -> ModelBilling:
    """One row per session of ``model`` (newest first) and the model's total: three queries."""
    ledger = (
        LedgerLine.objects.filter(session=OuterRef("pk"), kind__in=MODEL_KINDS)
        .order_by()
        .values("session")
        .annotate(total=Sum("amount_micros"))
        .values("total")
    )
    epochs = EpochRecord.objects.filter(session=OuterRef("pk")).order_by().values("session")
    sessions = (
        TrainingSession.objects.filter(model=model)
        .select_related("instance_type")
        .annotate(
            ledger_total=Coalesce(Subquery(ledger, output_field=IntegerField()), Value(0)),
            epoch_count=Coalesce(
                Subquery(epochs.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), Value(0)
            ),
            runtime_ms=Coalesce(
                Subquery(epochs.annotate(ms=Sum("duration_ms")).values("ms"), output_field=IntegerField()), Value(0)
            ),
        )
        .order_by("-created_at", "-pk")
    )
    rows = [
        SessionCost(session=s, runtime_ms=s.runtime_ms, epochs=s.epoch_count, price_micros=-s.ledger_total)
        for s in sessions
    ]
    return ModelBilling(model=model, sessions=rows, total_micros=model_total_micros(model))


def model_total_micros(model: YoloModel) -> int:
    """What the model's sessions took from the balance, net of refunds and write-offs."""
    total = LedgerLine.objects.filter(session__model=model, kind__in=MODEL_KINDS).aggregate(t=Sum("amount_micros"))
    return -int(total["t"] or 0)


# --- CSV ---------------------------------------------------------------------------


class _Echo:
    """A file-like object whose write returns the text, for streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\n")
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms // 1000}.{ms % 1000:03d}"


def _rate(micros: int | None) -> str:
    return "" if micros is None else usd_amount(micros, 6)


def cost_report_rows(model: YoloModel, *, chunk_size: int = 2000) -> Iterator[tuple[object, ...]]:
    """The model's cost report, oldest first: every ledger line of its sessions, with
    the epochs of Timed sessions interleaved at zero. Streams from the database."""
    lines = (
        LedgerLine.objects.filter(session__model=model, kind__in=MODEL_KINDS)
        .order_by("created_at", "id")
        .values_list(
            "created_at",
            "session_id",
            "epoch",
            "session__instance_type__name",
            "price_per_hour_micros",
            "session__price_per_hour_micros",
            "duration_ms",
            "amount_micros",
            "kind",
            "balance_after_micros",
            "reference",
        )
        .iterator(chunk_size=chunk_size)
    )
    prepaid = (
        EpochRecord.objects.filter(model=model, session__mode=TrainingSession.Mode.TIMED)
        .order_by("finished_at", "id")
        .values_list("finished_at", "session_id", "epoch", "session__instance_type__name", "duration_ms", "session__pk")
        .iterator(chunk_size=chunk_size)
    )
    ledger_rows = (
        (
            created,
            (
                _utc(created),
                session_id,
                "" if epoch is None else epoch,
                instance,
                _rate(price if price is not None else instance_price),
                _seconds(duration_ms),
                usd_amount(-amount, 6),
                kind,
                usd_amount(balance_after, 6),
                reference,
            ),
        )
        for (
            created,
            session_id,
            epoch,
            instance,
            price,
            instance_price,
            duration_ms,
            amount,
            kind,
            balance_after,
            reference,
        ) in lines
    )
    epoch_rows = (
        (
            finished,
            (
                _utc(finished),
                session_id,
                epoch,
                instance,
                "",
                _seconds(duration_ms),
                usd_amount(0, 6),
                PREPAID_EPOCH,
                "",
                f"session {pk} epoch {epoch} (prepaid)",
            ),
        )
        for finished, session_id, epoch, instance, duration_ms, pk in prepaid
    )
    for _when, row in heapq.merge(ledger_rows, epoch_rows, key=_first):
        yield row


def _first(item: tuple[dt.datetime, Any]) -> dt.datetime:
    return item[0]


def statement_rows(
    account: Account, start: dt.datetime, end: dt.datetime, *, chunk_size: int = 2000
) -> Iterator[tuple[object, ...]]:
    """Every ledger line of ``account`` with ``start <= created_at < end``, oldest first."""
    lines = (
        LedgerLine.objects.filter(account=account, created_at__gte=start, created_at__lt=end)
        .order_by("created_at", "id")
        .values_list(
            "created_at", "kind", "amount_micros", "balance_after_micros", "session_id", "epoch", "reference", "reason"
        )
        .iterator(chunk_size=chunk_size)
    )
    for created, kind, amount, balance_after, session_id, epoch, reference, reason in lines:
        yield (
            _utc(created),
            kind,
            usd_amount(amount, 6),
            usd_amount(balance_after, 6),
            "" if session_id is None else session_id,
            "" if epoch is None else epoch,
            reference,
            reason,
        )
