"""The full check of an extracted dataset: data.yaml, every image and label file, then
ultralytics' own checks, reached through :class:`UltralyticsChecks` so that this module
never imports ultralytics (the validation task passes ``training.yolo.dataset_check``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from training.datasets.labels import (
    LabelRow,
    check_image_decodes,
    iter_images,
    label_path_for,
    labels_folder_for,
    parse_label_file,
)
from training.datasets.problems import Problem
from training.datasets.spec import DatasetSpec, read_spec, relative_name, training_yaml_text
from training.models import Dataset

MAX_PROBLEMS = 200
SAMPLE_COUNT = 12


class UltralyticsChecks(Protocol):
    """Ultralytics' own checks, each returning its complaint in words or None when satisfied."""

    def image_label_error(self, image: Path, label: Path, class_count: int) -> str | None: ...

    def data_yaml_error(self, data_yaml: Path) -> str | None: ...


@dataclass
class SplitReport:
    images: int = 0
    background: int = 0
    instances: int = 0


@dataclass
class Validation:
    """The result of validating an extracted dataset."""

    spec: DatasetSpec
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    instances: list[int] = field(default_factory=list)  # per class
    samples: list[tuple[Path, str, list[LabelRow]]] = field(default_factory=list)
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

    def stats(self) -> dict[str, Any]:
        return {
            "task": Dataset.Task.DETECT.value,
            "splits": {
                name: {"images": r.images, "background": r.background, "instances": r.instances}
                for name, r in self.splits.items()
            },
            "images": sum(r.images for r in self.splits.values()),
            "classes": self.spec.names,
            "instances": dict(zip(self.spec.names, self.instances, strict=True)),
            "layout": {"yaml": self.spec.yaml_file, "root": self.spec.root, "splits": self.spec.splits},
            "warnings": [w.as_dict() for w in self.warnings[:MAX_PROBLEMS]],
        }


def validate_extracted(top: Path, ultralytics: UltralyticsChecks) -> Validation:
    """Check data.yaml, every image and every label file below the extraction dir ``top``,
    then let ``ultralytics`` check each image with its labels and the whole dataset.

    Raises DatasetError when data.yaml itself is unusable; otherwise returns every
    problem found (an empty ``problems`` list means the dataset is ready)."""
    top = top.resolve()
    spec = read_spec(top)
    result = Validation(spec=spec, warnings=list(spec.warnings), instances=[0] * len(spec.names))
    claimed_labels: set[Path] = set()
    label_folders: set[Path] = set()
    for split, folders in spec.splits.items():
        report = result.splits.setdefault(split, SplitReport())
        for folder_name in folders:
            folder = top / folder_name
            labels_folder = labels_folder_for(folder)
            if labels_folder is not None and labels_folder.is_dir():
                label_folders.add(labels_folder)
            for image in iter_images(folder):
                rel = relative_name(image, top)
                report.images += 1
                label = label_path_for(image)
                claimed_labels.add(label)
                try:
                    check_image_decodes(image)
                except ValueError as error:
                    result.report(
                        Problem(
                            f"This image cannot be decoded ({error}). Re-save it as JPEG or PNG, "
                            "or remove it and its label file.",
                            rel,
                        )
                    )
                    continue
                rows: list[LabelRow] = []
                if label.is_file():
                    rows, problems = parse_label_file(label, relative_name(label, top), len(spec.names))
                    if problems:
                        result.report(*problems)
                        continue
                if not rows:
                    report.background += 1
                # Ultralytics' own check of the pair (format, size, duplicates, classes).
                message = ultralytics.image_label_error(image, label, len(spec.names))
                if message is not None:
                    result.report(Problem(f"Ultralytics rejects this image or its labels: {message}", rel))
                    continue
                for row in rows:
                    result.instances[row.class_id] += 1
                report.instances += len(rows)
                if len(result.samples) < SAMPLE_COUNT and rows and (split == "val" or len(result.samples) < 8):
                    result.samples.append((image, split, rows))
        if report.images == 0:
            where = ", ".join(folders)
            result.report(Problem(f"The {split} split ({where}) has no images. Add images to it.", spec.yaml_file))

    for labels_folder in sorted(label_folders):
        for label in sorted(labels_folder.rglob("*.txt")):
            if label not in claimed_labels and label.is_file():
                result.note(
                    Problem(
                        "This label file has no image with the same name; it is ignored.", relative_name(label, top)
                    )
                )
    if not any(report.images for report in result.splits.values()):
        result.problems.insert(0, Problem("The dataset holds no images at all."))
    if result.ok:
        result.report(*_ultralytics_dataset_problems(spec, top, ultralytics))
    return result


def _ultralytics_dataset_problems(spec: DatasetSpec, top: Path, ultralytics: UltralyticsChecks) -> list[Problem]:
    """Ultralytics' own data.yaml check, run on a clean copy with absolute paths."""
    checked_yaml = top.parent / f"{top.name}.check.yaml"
    checked_yaml.write_text(training_yaml_text(spec, top), encoding="utf-8")
    try:
        message = ultralytics.data_yaml_error(checked_yaml)
    finally:
        checked_yaml.unlink(missing_ok=True)
    if message is None:
        return []
    return [Problem(f"Ultralytics cannot use this dataset: {message}", spec.yaml_file)]
