"""The full check of an extracted dataset for its task: the layout or data.yaml, every
image and label file (or class folder), then ultralytics' own checks, reached through
:class:`UltralyticsChecks` so that this module never imports ultralytics (the
validation task passes ``training.yolo.dataset_check``)."""

from __future__ import annotations

from pathlib import Path

from training.datasets.classify import validate_classification
from training.datasets.labels import (
    LabelFormat,
    LabelRow,
    check_image_decodes,
    iter_images,
    label_path_for,
    labels_folder_for,
    parse_label_file,
)
from training.datasets.problems import Problem
from training.datasets.report import MAX_PROBLEMS, SAMPLE_COUNT, Sample, SplitReport, UltralyticsChecks, Validation
from training.datasets.spec import DatasetSpec, read_spec, relative_name, training_yaml_text
from training.datasets.task_choice import DETECT_FROM_FILES, classify_root_for, label_task

__all__ = ["MAX_PROBLEMS", "UltralyticsChecks", "Validation", "validate_extracted"]


def validate_extracted(top: Path, ultralytics: UltralyticsChecks, declared_task: str = DETECT_FROM_FILES) -> Validation:
    """Check the dataset extracted below ``top`` for the task its owner chose (or, with
    ``declared_task`` "", the task its files show), then let ``ultralytics`` check each
    image with its labels and the whole dataset.

    Raises DatasetError when the dataset's layout, data.yaml or task is unusable;
    otherwise returns every problem found (an empty ``problems`` list means the dataset
    is ready)."""
    top = top.resolve()
    classify_root = classify_root_for(top, declared_task)
    if classify_root is not None:
        return validate_classification(top, classify_root, ultralytics)
    spec = read_spec(top)
    task = label_task(spec, top, declared_task)
    result = Validation(spec=spec, task=task, warnings=list(spec.warnings), instances=[0] * len(spec.names))
    label_format = LabelFormat(task, spec.keypoints)
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
                report.images += 1
                label = label_path_for(image)
                claimed_labels.add(label)
                _check_image(result, top, split, image, label, label_format, ultralytics)
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


def _check_image(
    result: Validation,
    top: Path,
    split: str,
    image: Path,
    label: Path,
    label_format: LabelFormat,
    ultralytics: UltralyticsChecks,
) -> None:
    """Check one image and its label file, counting its labels when both are good."""
    rel = relative_name(image, top)
    try:
        check_image_decodes(image)
    except ValueError as error:
        result.report(
            Problem(
                f"This image cannot be decoded ({error}). Re-save it as JPEG or PNG, or remove it and its label file.",
                rel,
            )
        )
        return
    rows: list[LabelRow] = []
    if label.is_file():
        rows, problems = parse_label_file(
            label, relative_name(label, top), len(result.spec.names), label_format=label_format
        )
        if problems:
            result.report(*problems)
            return
    # Ultralytics' own check of the pair (format, size, duplicates, classes, keypoints).
    message = ultralytics.image_label_error(image, label, len(result.spec.names), label_format.keypoints)
    if message is not None:
        result.report(Problem(f"Ultralytics rejects this image or its labels: {message}", rel))
        return
    if not rows:
        result.splits[split].background += 1
    for row in rows:
        result.count(split, row)
    if len(result.samples) < SAMPLE_COUNT and rows and (split == "val" or len(result.samples) < 8):
        result.samples.append(Sample(image, split, rows))


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
