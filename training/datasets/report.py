"""What validating a dataset found, for every task: problems, notes, counts, samples,
and the seam through which ultralytics' own checks are reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from training.datasets.labels import LabelRow
from training.datasets.problems import Problem
from training.datasets.spec import DatasetSpec
from training.models import Dataset

MAX_PROBLEMS = 200
SAMPLE_COUNT = 12


class UltralyticsChecks(Protocol):
    """Ultralytics' own checks, each returning its complaint in words or None when satisfied."""

    def image_label_error(
        self, image: Path, label: Path, class_count: int, keypoints: tuple[int, int] | None = None
    ) -> str | None: ...

    def data_yaml_error(self, data_yaml: Path) -> str | None: ...

    def image_error(self, image: Path) -> str | None: ...

    def classify_folder_error(self, root: Path) -> str | None: ...


@dataclass
class SplitReport:
    images: int = 0
    background: int = 0
    instances: int = 0


@dataclass(frozen=True)
class Sample:
    """An image to draw for the detail page, with its labels (or its class, for classification)."""

    image: Path
    split: str
    rows: list[LabelRow]
    class_id: int | None = None


@dataclass
class Validation:
    """The result of validating an extracted dataset."""

    spec: DatasetSpec
    task: str = Dataset.Task.DETECT.value
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    instances: list[int] = field(default_factory=list)  # per class (classification: images per class)
    class_images: dict[str, list[int]] = field(default_factory=dict)  # classification: split -> images per class
    samples: list[Sample] = field(default_factory=list)
    polygon_points: int = 0  # segmentation: points over all polygons
    keypoints_seen: int = 0  # pose: keypoints over all instances
    keypoints_labelled: int = 0  # pose: those with visibility 1 or 2
    omitted: int = 0  # problems counted but not kept (beyond MAX_PROBLEMS)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self, *problems: Problem) -> None:
        """Keep the first MAX_PROBLEMS problems and count the rest: memory stays bounded."""
        for problem in problems:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(problem)
            else:
                self.omitted += 1

    def note(self, warning: Problem) -> None:
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(warning)

    def count(self, split: str, row: LabelRow) -> None:
        """Count one label row of ``split`` in the statistics."""
        self.instances[row.class_id] += 1
        self.splits[split].instances += 1
        self.polygon_points += len(row.points)
        self.keypoints_seen += len(row.keypoints)
        self.keypoints_labelled += sum(1 for keypoint in row.keypoints if keypoint[2] > 0)

    def stats(self) -> dict[str, Any]:
        """What the detail page shows, stored on the dataset (docs/datasets.md, "Statistics")."""
        names = self.spec.names
        stats: dict[str, Any] = {
            "task": self.task,
            "splits": {
                name: {"images": r.images, "background": r.background, "instances": r.instances}
                for name, r in self.splits.items()
            },
            "images": sum(r.images for r in self.splits.values()),
            "classes": names,
            "instances": dict(zip(names, self.instances, strict=True)),
            "layout": {"yaml": self.spec.yaml_file, "root": self.spec.root, "splits": self.spec.splits},
            "warnings": [w.as_dict() for w in self.warnings[:MAX_PROBLEMS]],
        }
        instances = sum(self.instances)
        if self.task == Dataset.Task.CLASSIFY:
            for split, counts in self.class_images.items():
                stats["splits"][split] = {
                    "images": sum(counts),
                    "classes": dict(zip(names, counts, strict=True)),
                }
        elif self.task == Dataset.Task.SEGMENT:
            stats["points_per_polygon"] = round(self.polygon_points / instances, 1) if instances else None
        elif self.task == Dataset.Task.POSE and self.spec.keypoints is not None:
            count, dims = self.spec.keypoints
            stats["keypoints"] = {
                "per_instance": count,
                "values": dims,
                "flip_idx": self.spec.flip_idx is not None,
                # Visibility 0 means "not labelled"; without visibility (2 values) every keypoint counts.
                "visible_share": round(self.keypoints_labelled / self.keypoints_seen, 3)
                if self.keypoints_seen
                else None,
            }
        return stats
