"""The comparison's tables: one row per measure or setting, one cell per model, the
best value of a row marked, and the settings rows where the models differ flagged.

Which value is best: the highest for accuracy measures (precision, recall, mAP,
top-k accuracy), the lowest for losses, cost and training time. A row marks its best
only when at least two models have a value and they are not all equal; ties share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.money import format_usd
from training import task_metrics
from training.comparison.runs import Run
from training.models import Dataset

Task = Dataset.Task


@dataclass(frozen=True)
class Measure:
    key: str  # the stored name (training.task_metrics)
    label: str
    higher_is_better: bool = True


BOX_MEASURES = (
    Measure("precision", "Precision"),
    Measure("recall", "Recall"),
    Measure("map50", "mAP50"),
    Measure("map50_95", "mAP50-95"),
)


def _prefixed(prefix: str, label: str) -> tuple[Measure, ...]:
    return tuple(
        Measure(f"{prefix}_{m.key}", f"{label} {m.label if m.label.startswith('mAP') else m.label.lower()}")
        for m in BOX_MEASURES
    )


# Each task's quality measures, under the names the worker and the evaluation store.
TASK_MEASURES: dict[str, tuple[Measure, ...]] = {
    Task.DETECT: BOX_MEASURES,
    Task.OBB: BOX_MEASURES,
    Task.SEGMENT: (*_prefixed("mask", "Mask"), *BOX_MEASURES),
    Task.POSE: (*_prefixed("pose", "Pose"), *BOX_MEASURES),
    Task.CLASSIFY: (Measure("top1", "Top-1 accuracy"), Measure("top5", "Top-5 accuracy")),
}


# What ultralytics' loss names stand for (the Train tab's charts say the same).
LOSS_LABELS = {
    "box_loss": "Box loss",
    "seg_loss": "Mask loss",
    "pose_loss": "Keypoint loss",
    "kobj_loss": "Keypoint visibility loss",
    "rle_loss": "Keypoint RLE loss",
    "angle_loss": "Angle loss",
    "cls_loss": "Class loss",
    "dfl_loss": "DFL loss",
    "l1_loss": "L1 box loss",
    "sem_loss": "Semantic loss",
    "loss": "Loss",
}


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False

    def __html__(self) -> str:
        if self.best:
            return f'<td class="num best"><strong>{escape(self.text)}</strong> <span class="mark">best</span></td>'
        return f'<td class="num">{escape(self.text)}</td>'


@dataclass(frozen=True)
class Row:
    """A table row; it renders itself (``{{ row }}``): the tables of eight models hold
    hundreds of cells, which Python formats several times faster than template tags."""

    label: str
    cells: tuple[Cell, ...]
    differs: bool = False

    def __str__(self) -> SafeString:  # what the template prints: safe, built from escaped parts
        cells = "".join(cell.__html__() for cell in self.cells)
        if self.differs:
            label = f'{escape(self.label)} <span class="mark">differs</span>'
            return mark_safe(f'<tr class="differs"><th scope="row">{label}</th>{cells}</tr>')  # noqa: S308
        return mark_safe(f'<tr><th scope="row">{escape(self.label)}</th>{cells}</tr>')  # noqa: S308

    __html__ = __str__


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple[Row, ...]
    note: str = ""


@dataclass(frozen=True)
class SettingsTable:
    rows: tuple[Row, ...]
    differing: int  # how many rows differ


# --- which measures -----------------------------------------------------------------------


def task_measures(task: str) -> tuple[Measure, ...]:
    return TASK_MEASURES.get(task, BOX_MEASURES)


def shared_measures(runs: Sequence[Run]) -> tuple[Measure, ...]:
    """The quality measures every run's task has, in the first run's order."""
    keys = set.intersection(*({m.key for m in task_measures(run.task)} for run in runs))
    return tuple(m for m in task_measures(runs[0].task) if m.key in keys)


def shared_losses(runs: Sequence[Run]) -> tuple[Measure, ...]:
    """The losses every run with an epoch recorded at its final epoch and some run
    recorded above zero (a loss that stays zero is a part the architecture lacks),
    train then val, the task's main loss first."""
    finals = [run.final[1] for run in runs if run.final] or [{}]
    keys = set.intersection(*(set(metrics) for metrics in finals))
    nonzero = {key for metrics in finals for key, value in metrics.items() if value}
    main = task_metrics.main_loss(runs[0].task).key.removeprefix("train_")
    losses = sorted(
        (key for key in keys & nonzero if key.endswith("loss") and key.startswith(("train_", "val_"))),
        key=lambda key: (key.startswith("val_"), key.partition("_")[2] != main, key),
    )
    return tuple(Measure(key, _loss_label(key), higher_is_better=False) for key in losses)


def _loss_label(key: str) -> str:
    stage, _, name = key.partition("_")
    return f"{LOSS_LABELS.get(name, name.replace('_', ' ').capitalize())} ({stage})"


# --- cells ----------------------------------------------------------------------------------


def best_of(values: Sequence[float | None], *, higher_is_better: bool) -> set[int]:
    """Positions of the best value: none unless two values exist and they differ."""
    present = [value for value in values if value is not None]
    if len(present) < 2 or len(set(present)) == 1:
        return set()
    best = max(present) if higher_is_better else min(present)
    return {i for i, value in enumerate(values) if value == best}


def measure_row(
    label: str,
    values: Sequence[float | None],
    *,
    higher_is_better: bool,
    text: Callable[[float], str] = lambda value: f"{value:.4f}",
) -> Row:
    best = best_of(values, higher_is_better=higher_is_better)
    return Row(
        label,
        tuple(Cell("—" if value is None else text(value), i in best) for i, value in enumerate(values)),
    )


def _text_row(label: str, texts: Sequence[str]) -> Row:
    return Row(label, tuple(Cell(text) for text in texts), differs=len(set(texts)) > 1)


# --- the sections ---------------------------------------------------------------------------


def metric_sections(runs: Sequence[Run]) -> tuple[Section, ...]:
    """Final epoch, best epoch and (when any model has one) evaluation: one row per
    shared measure, the losses after the accuracy measures."""
    quality = shared_measures(runs)
    measures = (*quality, *shared_losses(runs))
    finals = [run.final for run in runs]
    bests = [run.best for run in runs]
    sections = [
        _epoch_section("Final epoch", finals, measures),
        _epoch_section(
            "Best epoch",
            bests,
            measures,
            note="The epoch whose weights are best.pt (ranked as ultralytics does: 0.1 x mAP50 + 0.9 x mAP50-95, "
            "boxes plus masks or keypoints; a classifier's mean of top-1 and top-5).",
        ),
    ]
    if any(run.evaluation is not None for run in runs):
        rows = [Row("Weights of epoch", tuple(Cell(_optional(run.evaluation_epoch)) for run in runs))]
        rows += [
            measure_row(
                m.label,
                [_number((run.evaluation or {}).get(m.key)) for run in runs],
                higher_is_better=m.higher_is_better,
            )
            for m in quality
        ]
        sections.append(
            Section(
                "Evaluation",
                tuple(rows),
                note="On the dataset's validation split, from the model's Evaluation tab; — where not evaluated yet.",
            )
        )
    return tuple(sections)


def _epoch_section(
    title: str, records: Sequence[tuple[int, dict[str, float]] | None], measures: Sequence[Measure], note: str = ""
) -> Section:
    rows = [Row("Epoch", tuple(Cell(str(record[0]) if record else "—") for record in records))]
    for m in measures:
        values = [_number(record[1].get(m.key)) if record else None for record in records]
        rows.append(measure_row(m.label, values, higher_is_better=m.higher_is_better))
    return Section(title, tuple(rows), note=note if any(records) else "No model has completed an epoch yet.")


def cost_rows(runs: Sequence[Run]) -> tuple[Row, ...]:
    """Total charged and billed training time, the lowest marked best."""
    return (
        measure_row(
            "Charged", [run.cost_micros for run in runs], higher_is_better=False, text=lambda v: format_usd(int(v), 4)
        ),
        measure_row(
            "Training time (billed epochs)",
            [run.training_ms / 1000 for run in runs],
            higher_is_better=False,
            text=_duration,
        ),
    )


def settings_table(runs: Sequence[Run], *, differences_first: bool) -> SettingsTable:
    """What each run was set up with; rows whose values differ are flagged and, with
    ``differences_first``, come first (otherwise the usual order)."""
    models = [run.model for run in runs]
    rows = [
        _text_row("Task", [Task(model.dataset.task).label for model in models]),
        _text_row("Architecture", [model.architecture for model in models]),
        _text_row("Starting weights", [model.lineage for model in models]),
        _text_row("Dataset", [f"{model.dataset.name} ({len(model.dataset.class_names)} classes)" for model in models]),
        _text_row("Epochs completed / target", [f"{m.epochs_completed} / {m.target_epochs}" for m in models]),
    ]
    arguments = sorted({key for model in models for key in model.train_args} - {"epochs"})
    rows += [
        _text_row(key, [_argument(model.train_args[key]) if key in model.train_args else "default" for model in models])
        for key in arguments
    ]
    if differences_first:
        rows.sort(key=lambda row: not row.differs)  # stable: each group keeps its order
    return SettingsTable(rows=tuple(rows), differing=sum(row.differs for row in rows))


def _argument(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _optional(value: int | None) -> str:
    return "—" if value is None else str(value)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
