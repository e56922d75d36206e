"""Side-by-side comparison of a user's models (docs/compare.md): their metrics,
curves and settings, the best value of each row marked and what changed between
runs flagged.

``compare_models`` is the one entry point the view calls; it reads everything in a
fixed number of queries whatever the number of models and epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubsite.models import User
from training.comparison.curves import Chart, Style, comparison_charts, styles
from training.comparison.runs import MAX_MODELS, MIN_MODELS, CannotCompare, Run, load_runs, picked_uids
from training.comparison.tables import Section, SettingsTable, cost_rows, metric_sections, settings_table
from training.models import Dataset

__all__ = ["MAX_MODELS", "MIN_MODELS", "CannotCompare", "Comparison", "compare_models"]


@dataclass(frozen=True)
class Comparison:
    runs: tuple[Run, ...]
    styles: tuple[Style, ...]
    task_note: str
    metrics: tuple[Section, ...]
    charts: tuple[Chart, ...]
    settings: SettingsTable
    costs: Section

    @property
    def columns(self) -> tuple[tuple[Run, Style], ...]:
        return tuple(zip(self.runs, self.styles, strict=True))


def compare_models(owner: User, picked: list[str], *, differences_first: bool = True) -> Comparison:
    """The comparison of the owner's models ``picked`` (their uids, as the form sends
    them). Raises CannotCompare, with a message for the user, for fewer than two or
    more than MAX_MODELS models, a bad id, or a model that is not the owner's."""
    runs = load_runs(owner, picked_uids(picked))
    return Comparison(
        runs=tuple(runs),
        styles=tuple(styles(len(runs))),
        task_note=_task_note(runs),
        metrics=metric_sections(runs),
        charts=comparison_charts(runs),
        settings=settings_table(runs, differences_first=differences_first),
        costs=Section("Cost and time", cost_rows(runs)),
    )


def _task_note(runs: list[Run]) -> str:
    tasks = list(dict.fromkeys(run.task for run in runs))
    if len(tasks) == 1:
        return ""
    labels = ", ".join(Dataset.Task(task).label.lower() for task in tasks)
    return f"These models do different tasks ({labels}): they are compared only on the measures those tasks share."
