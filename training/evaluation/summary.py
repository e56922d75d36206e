"""The evaluation as a download: the whole of it as JSON, the per-class table as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from training.evaluation.reading import class_figures
from training.models import ModelEvaluation, YoloModel

# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def summary_json(model: YoloModel, evaluation: ModelEvaluation) -> dict[str, Any]:
    return {
        "model": {"uid": str(model.uid), "name": model.name, "architecture": model.architecture},
        "task": evaluation.task,
        "weights_epoch": evaluation.weights_epoch,
        "evaluated_at": evaluation.finished_at.isoformat() if evaluation.finished_at else None,
        "metrics": evaluation.metrics,
        "per_class": evaluation.per_class,
        "confusion": evaluation.confusion,
        "curves": evaluation.curves,
    }


def summary_csv(evaluation: ModelEvaluation) -> str:
    """One row for all classes (the overall figures), then one per class."""
    wanted = class_figures(evaluation.task)
    counts = ["images"] if evaluation.task == "classify" else ["images", "instances"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["class", *counts, *(metric.key for metric in wanted)])
    writer.writerow(["all", *("" for _ in counts), *(_cell(evaluation.metrics.get(metric.key)) for metric in wanted)])
    for row in evaluation.per_class:
        writer.writerow(
            [_safe(str(row["name"])), *(row.get(key, "") for key in counts), *(_cell(row.get(m.key)) for m in wanted)]
        )
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.5f}"


def _safe(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
