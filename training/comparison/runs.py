"""The models being compared and everything the comparison reads about them, loaded
in a fixed number of queries however many models and epochs there are.

A *run* is one model as the comparison sees it: its epoch history, its evaluation
(when one is done), what its sessions were charged and how long its epochs took.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Sum

from billing.models import LedgerLine
from billing.reports import MODEL_KINDS
from hubsite.models import User
from training.models import Dataset, EpochRecord, ModelEvaluation, YoloModel

MIN_MODELS = 2
MAX_MODELS = 8
# What the comparison never shows of a dataset: its validation report and samples.
DATASET_BULK = ("dataset__stats", "dataset__errors")

History = list[tuple[int, dict[str, float]]]  # (epoch, metrics), oldest first
Task = Dataset.Task


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
    # Every epoch, oldest first, with only the figures the charts and the best-epoch
    # ranking read (``task_metrics.series_figures``); the final and best epochs carry
    # all of theirs.
    history: History
    final: tuple[int, dict[str, float]] | None
    best: tuple[int, dict[str, float]] | None  # the epoch whose weights are best.pt
    training_ms: int
    cost_micros: int
    evaluation: dict[str, float] | None  # the evaluation's overall metrics, when one is done
    evaluation_epoch: int | None
    pr_curve: PrCurve | None

    @property
    def task(self) -> str:
        return self.model.dataset.task

    def recorded(self, key: str) -> bool:
        """Whether any epoch of the run recorded ``key`` (a series figure)."""
        return any(key in metrics for _epoch, metrics in self.history)


def fitness(task: str, metrics: dict[str, float]) -> float:
    """How ultralytics ranks epochs to keep best.pt: 0.1 x mAP50 + 0.9 x mAP50-95 of
    the boxes plus that of the masks or keypoints; the mean of top-1 and top-5 for a
    classifier."""
    if task == Task.CLASSIFY:
        return (metrics.get("top1", 0.0) + metrics.get("top5", 0.0)) / 2
    return sum(
        0.1 * metrics.get(f"{prefix}map50", 0.0) + 0.9 * metrics.get(f"{prefix}map50_95", 0.0)
        for prefix in ("", "mask_", "pose_")
    )


def best_epoch(task: str, history: History) -> tuple[int, dict[str, float]] | None:
    """The epoch whose weights became best.pt: the fittest, the earliest on a tie."""
    if not history:
        return None
    return max(history, key=lambda record: (fitness(task, record[1]), -record[0]))


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
    owned = YoloModel.objects.filter(owner=owner, uid__in=uids).select_related("dataset").defer(*DATASET_BULK)
    models = {model.uid: model for model in owned}
    missing = len(uids) - len(models)
    if missing:
        raise CannotCompare(
            f"{missing} of the models picked {'was' if missing == 1 else 'were'} not found. "
            "Pick the models again from your model list.",
            status=404,
        )
    ids = [model.pk for model in models.values()]
    histories = {model.pk: _history(model) for model in models.values()}
    ends = {
        model.pk: _final_and_best(model.dataset.task, histories[model.pk][0])
        for model in models.values()
        if histories[model.pk][0]
    }
    full = _full_metrics([(pk, epoch) for pk, pair in ends.items() for epoch in set(pair)])
    evaluations = _evaluations(ids)
    costs = _costs(ids)
    runs = []
    for uid in uids:
        model = models[uid]
        history, training_ms = histories[model.pk]
        final, best = ends.get(model.pk, (None, None))
        evaluation = evaluations.get(model.pk)
        runs.append(
            Run(
                model=model,
                history=history,
                final=None if final is None else (final, full[model.pk, final]),
                best=None if best is None else (best, full[model.pk, best]),
                training_ms=training_ms,
                cost_micros=costs.get(model.pk, 0),
                evaluation=evaluation["metrics"] if evaluation else None,
                evaluation_epoch=evaluation["weights_epoch"] if evaluation else None,
                pr_curve=_pr_curve(evaluation),
            )
        )
    return runs


def _history(model: YoloModel) -> tuple[History, int]:
    """The model's epochs with their chart and ranking figures, oldest first, and
    their billed milliseconds: its ``epoch_series``, kept with each epoch."""
    history = [(epoch, figures) for epoch, _ms, figures in model.epoch_series]
    return history, sum(ms for _epoch, ms, _figures in model.epoch_series)


def _final_and_best(task: str, history: History) -> tuple[int, int]:
    best = best_epoch(task, history)
    return history[-1][0], best[0] if best else history[-1][0]


def _full_metrics(epochs: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, float]]:
    """All the figures of these (model id, epoch) pairs."""
    if not epochs:
        return {}
    sql = (
        "SELECT model_id, epoch, metrics::text FROM "  # noqa: S608 - the table's name and placeholders only
        f"{EpochRecord._meta.db_table} WHERE (model_id, epoch) IN (SELECT * FROM unnest(%s::int[], %s::int[]))"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [[pk for pk, _epoch in epochs], [epoch for _pk, epoch in epochs]])
        return {(model_id, epoch): json.loads(metrics) for model_id, epoch, metrics in cursor.fetchall()}


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
