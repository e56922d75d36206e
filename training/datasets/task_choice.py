"""Which task a dataset is for: read from its files, or chosen by its owner at upload and
checked against them (docs/datasets.md, "Tasks").

From the files: a zip with ``train/`` class folders and no data.yaml is for
classification; ``kpt_shape`` in data.yaml means pose; otherwise the label lines decide:
any polygon (7, 11, 13, ... values) means segmentation, 5-value lines alone mean
detection, and 9-value lines without a polygon are ambiguous (an oriented box or a
4-point polygon), so the owner must choose.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from training.datasets.labels import iter_images, label_path_for, line_shape
from training.datasets.limits import Limits, read_capped
from training.datasets.problems import DatasetError, Problem, dataset_error
from training.datasets.spec import DatasetSpec, has_data_yaml, relative_name
from training.models import Dataset

Task = Dataset.Task
DETECT_FROM_FILES = ""
AMBIGUOUS_CHOICES = (Task.SEGMENT.value, Task.OBB.value)

# Line kinds by value count; other counts fit no task and are reported by the full check.
BOX, QUAD, POLYGON = "box", "quad", "polygon"
KINDS_ALLOWED = {Task.DETECT: {BOX}, Task.SEGMENT: {POLYGON, QUAD}, Task.OBB: {QUAD}}
KIND_TASKS = {BOX: "Detection", POLYGON: "Segmentation", QUAD: "Oriented boxes or Segmentation"}


class AmbiguousTaskError(DatasetError):
    """The files fit more than one task; ``choices`` are the tasks the owner may choose."""

    choices = AMBIGUOUS_CHOICES


def task_label(task: str) -> str:
    return str(Task(task).label)


def _chose(declared: str) -> str:
    return f"you chose {task_label(declared)}"


def find_classify_root(top: Path) -> Path | None:
    """The folder holding ``train/`` (and ``val/``): the top, or its single folder."""
    if (top / "train").is_dir():
        return top
    folders = [path for path in top.iterdir() if path.is_dir()]
    if len(folders) == 1 and (folders[0] / "train").is_dir():
        return folders[0]
    return None


def classify_root_for(top: Path, declared: str) -> Path | None:
    """The classification root when the dataset is to be checked as classification, else
    None; raises DatasetError when the owner's choice contradicts the layout."""
    root = find_classify_root(top)
    if declared == Task.CLASSIFY:
        if root is None:
            raise dataset_error(
                "You chose Classification, but the zip has no train/ folder (with one folder of images per class) "
                "at its root or in its single top folder. Upload a zip with train/<class>/ and val/<class>/ "
                "folders, or choose another task."
            )
        return root
    if root is None or has_data_yaml(top):
        return None
    if declared == DETECT_FROM_FILES:
        return root
    raise dataset_error(
        f"The zip is laid out for classification (a train/ folder and no data.yaml), but {_chose(declared)}. "
        "Upload it again choosing Classification (or Detect from the files), or add data.yaml, images/ and labels/."
    )


@dataclass(frozen=True)
class Line:
    file: str
    number: int
    values: int
    kind: str


def label_task(spec: DatasetSpec, top: Path, declared: str, limits: Limits | None = None) -> str:
    """The task of a data.yaml dataset; raises DatasetError when the files contradict the
    owner's choice (naming the first offending file and line) or fit several tasks."""
    if declared == Task.POSE or (declared == DETECT_FROM_FILES and spec.keypoints is not None):
        if spec.keypoints is None:
            raise dataset_error(
                "You chose Pose, but data.yaml has no kpt_shape. Add e.g. 'kpt_shape: [17, 3]' (keypoints per "
                "instance; 3 values each: x y visibility, or 2: x y), or choose another task.",
                spec.yaml_file,
            )
        return Task.POSE.value
    if spec.keypoints is not None:
        raise dataset_error(
            f"data.yaml declares kpt_shape, which only pose datasets have, but {_chose(declared)}. Upload it again "
            "choosing Pose (or Detect from the files), or remove kpt_shape and flip_idx.",
            spec.yaml_file,
        )
    limits = limits or Limits.from_settings()
    if declared == DETECT_FROM_FILES:
        return _task_from_lines(_label_lines(spec, top, limits))
    allowed = KINDS_ALLOWED[Task(declared)]
    for line in _label_lines(spec, top, limits):
        if line.kind not in allowed:
            raise dataset_error(
                f"This line has {line.values} values: {line_shape(line.values)}, but {_chose(declared)}. "
                f"Upload the zip again choosing {KIND_TASKS[line.kind]} (or Detect from the files), "
                "or fix the labels.",
                line.file,
                line.number,
            )
    return str(declared)


def _task_from_lines(lines: Iterator[Line]) -> str:
    first_quad: Line | None = None
    for line in lines:
        if line.kind == POLYGON:
            return Task.SEGMENT.value
        if line.kind == QUAD and first_quad is None:
            first_quad = line
    if first_quad is None:
        return Task.DETECT.value
    raise AmbiguousTaskError(
        [
            Problem(
                "This line has 9 values: it could be an oriented box (OBB) or a 4-point segmentation polygon, and "
                "no label in the dataset settles which. Upload the zip again choosing Segmentation or Oriented "
                "boxes as its task, or validate it again as one of them below.",
                first_quad.file,
                first_quad.number,
            )
        ]
    )


def _label_lines(spec: DatasetSpec, top: Path, limits: Limits) -> Iterator[Line]:
    """Every label line of a task's shape, in the order the full check reads them; lines
    and files the full check will refuse anyway are skipped here."""
    for folders in spec.splits.values():
        for folder in folders:
            for image in iter_images(top / folder):
                label = label_path_for(image)
                if not label.is_file():
                    continue
                raw = read_capped(label, limits.max_label_bytes)
                try:
                    text = raw.decode("utf-8-sig") if raw is not None else ""
                except UnicodeDecodeError:
                    continue
                rel = relative_name(label, top)
                for number, content in enumerate(io.StringIO(text, newline=None), start=1):
                    count = len(content.split())
                    kind = _kind(count)
                    if kind is not None:
                        yield Line(rel, number, count, kind)


def _kind(count: int) -> str | None:
    if count == 5:
        return BOX
    if count == 9:
        return QUAD
    if line_shape(count) is not None:
        return POLYGON
    return None
