"""The models being compared and everything the comparison reads about them, loaded
in a fixed number of queries however many models and epochs there are.

A *run* is one model as the comparison sees it: its epoch history, its evaluation
(when one is done), what its sessions were charged and how long its epochs took.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Sum

from billing.models import LedgerLine
from billing.reports import MODEL_KINDS
from hubsite.models import User
from training.models import EpochRecord, ModelEvaluation, YoloModel

MIN_MODELS = 2
MAX_MODELS = 8

History = list[tuple[int, dict[str, float]]]  # (epoch, metrics), oldest first


class CannotCompare(Exception):
    """The models picked cannot be compared; the message says why, for the user.
    ``status`` is the HTTP status of the page that says so."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class PrCurve:
    recall: list[float]
    precision: list[float]


@dataclass(frozen=True)
class Run:
    model: YoloModel
    history: History
    training_ms: int
    cost_micros: int
    evaluation: dict[str, float] | None  # the evaluation's overall metrics, when one is done
    evaluation_epoch: int | None
    pr_curve: PrCurve | None

    @property
    def task(self) -> str:
        return self.model.dataset.task

    @property
    def final(self) -> tuple[int, dict[str, float]] | None:
        return self.history[-1] if self.history else None

    def recorded(self, key: str) -> bool:
        """Whether any epoch of the run recorded ``key``."""
        return any(key in metrics for _epoch, metrics in self.history)


def picked_uids(values: list[str]) -> list[uuid.UUID]:
    """The distinct model ids picked, in the order picked; refuses bad ids and a count
    outside MIN_MODELS..MAX_MODELS."""
    picked: list[uuid.UUID] = []
    for value in values:
        try:
            uid = uuid.UUID(value.strip())
        except ValueError:
            raise CannotCompare(
                "One of the models picked is not a valid model id: pick them from your model list."
            ) from None
        if uid not in picked:
            picked.append(uid)
    if len(picked) < MIN_MODELS:
        raise CannotCompare(f"Pick at least {MIN_MODELS} different models to compare.")
    if len(picked) > MAX_MODELS:
        raise CannotCompare(f"Pick at most {MAX_MODELS} models to compare; you picked {len(picked)}.")
    return picked


def load_runs(owner: User, uids: list[uuid.UUID]) -> list[Run]:
    """The owner's models ``uids`` as runs, in that order: four queries. A model that is
    not the owner's is refused exactly like one that does not exist."""
    owned = YoloModel.objects.filter(owner=owner, uid__in=uids).select_related("dataset")
    models = {model.uid: model for model in owned}
    missing = len(uids) - len(models)
    if missing:
        raise CannotCompare(
            f"{missing} of the models picked {'was' if missing == 1 else 'were'} not found. "
            "Pick the models again from your model list.",
            status=404,
        )
    ids = [model.pk for model in models.values()]
    histories = _histories(ids)
    evaluations = _evaluations(ids)
    costs = _costs(ids)
    runs = []
    for uid in uids:
        model = models[uid]
        history = [(epoch, metrics) for epoch, _ms, metrics in histories[model.pk]]
        evaluation = evaluations.get(model.pk)
        runs.append(
            Run(
                model=model,
                history=history,
                training_ms=sum(ms for _epoch, ms, _metrics in histories[model.pk]),
                cost_micros=costs.get(model.pk, 0),
                evaluation=evaluation["metrics"] if evaluation else None,
                evaluation_epoch=evaluation["weights_epoch"] if evaluation else None,
                pr_curve=_pr_curve(evaluation),
            )
        )
    return runs


def _histories(model_ids: list[int]) -> dict[int, list[tuple[int, int, dict[str, float]]]]:
    """Each model's epochs as (epoch, milliseconds, metrics), oldest first. PostgreSQL
    sends one JSON array per model, read with plain SQL: five documents of a hundred
    epochs cost a fraction of five hundred rows through the ORM (benchmarks/compare_models.py)."""
    table = EpochRecord._meta.db_table
    sql = (
        f"SELECT model_id, jsonb_agg(jsonb_build_array(epoch, duration_ms, metrics) ORDER BY epoch)::text "  # noqa: S608
        f"FROM {table} WHERE model_id = ANY(%s) GROUP BY model_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [model_ids])
        rows = cursor.fetchall()
    histories: dict[int, list[tuple[int, int, dict[str, float]]]] = defaultdict(list)
    for model_id, epochs in rows:
        histories[model_id] = [(epoch, duration_ms, metrics) for epoch, duration_ms, metrics in json.loads(epochs)]
    return histories


def _evaluations(model_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each done evaluation's metrics and overall PR curve, without the rest of its
    curves, its confusion matrix or its per-class table."""
    rows = ModelEvaluation.objects.filter(model_id__in=model_ids, status=ModelEvaluation.Status.DONE).values(
        "model_id", "weights_epoch", "metrics", "curves__pr__x", "curves__pr__all"
    )
    return {row["model_id"]: dict(row) for row in rows}


def _pr_curve(evaluation: dict[str, Any] | None) -> PrCurve | None:
    if not evaluation:
        return None
    recall, precision = evaluation["curves__pr__x"], evaluation["curves__pr__all"]
    if not isinstance(recall, list) or not isinstance(precision, list) or not recall or len(recall) != len(precision):
        return None
    return PrCurve(recall=[float(x) for x in recall], precision=[float(y) for y in precision])


def _costs(model_ids: list[int]) -> dict[int, int]:
    """What each model's sessions took from the balance, net of refunds and write-offs
    (the lines ``billing.reports.model_total_micros`` adds up), in one query."""
    totals = (
        LedgerLine.objects.filter(session__model_id__in=model_ids, kind__in=MODEL_KINDS)
        .order_by()
        .values("session__model_id")
        .annotate(total=Sum("amount_micros"))
        .values_list("session__model_id", "total")
    )
    return {model_id: -int(total or 0) for model_id, total in totals}
