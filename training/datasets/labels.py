"""Images and YOLO label files: where labels are, what each line holds, whether an image decodes."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from training.datasets.limits import Limits, human_bytes, read_capped
from training.datasets.problems import Problem

# The image formats ultralytics trains on (ultralytics.data.utils.IMG_FORMATS), kept here
# so the web process need not import ultralytics; a test checks the two agree.
IMAGE_SUFFIXES = frozenset(
    {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpeg2000", "jpg", "mpo", "png", "tif", "tiff", "webp"}
)
# Coordinates may overshoot 0..1 by this much (rounding in exporters); more is an error.
COORD_TOLERANCE = 1e-3
# A label file stops being checked after this many bad lines (one is enough to fix).
MAX_PROBLEMS_PER_FILE = 20
# Box lines per label file (the byte limit DATASET_MAX_LABEL_BYTES comes first in practice).
MAX_LABEL_LINES = 100_000
# A polygon or oriented box enclosing less (in normalised units) encloses nothing.
MIN_POLYGON_AREA = 1e-12
Image.MAX_IMAGE_PIXELS = 200_000_000  # refuse decompression bombs in images too (PIL raises beyond 2x this)


def label_path_for(image: Path) -> Path:
    """Where ultralytics looks for an image's labels: the last /images/ becomes /labels/."""
    text = os.fspath(image)
    marker, replacement = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = head + replacement + tail
    return Path(text).with_suffix(".txt")


def labels_folder_for(images_folder: Path) -> Path | None:
    parts = images_folder.parts
    if "images" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:index], "labels", *parts[index + 1 :])


def iter_images(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_SUFFIXES:
            yield path


@dataclass
class LabelRow:
    """One label line: its class and bounding box (normalised), with the polygon's or the
    oriented box's corners (segment, obb) or the keypoints (pose) when the task has them."""

    class_id: int
    x: float
    y: float
    w: float
    h: float
    points: tuple[tuple[float, float], ...] = ()
    keypoints: tuple[tuple[float, float, float], ...] = ()  # x, y, visibility (2 when there is none)


@dataclass(frozen=True)
class LabelFormat:
    """What a label line holds for a task (``Dataset.Task`` values)."""

    task: str = "detect"
    keypoints: tuple[int, int] | None = None  # pose: kpt_shape

    def expected_values(self) -> str:
        """What each line must hold, in words."""
        if self.task == "segment":
            return "a segmentation label is the class and at least 3 points: class x1 y1 x2 y2 x3 y3 ..."
        if self.task == "obb":
            return "an oriented-box label needs 9: class x1 y1 x2 y2 x3 y3 x4 y4 (the four corners)"
        if self.task == "pose" and self.keypoints is not None:
            count, dims = self.keypoints
            each = "x y visibility" if dims == 3 else "x y"
            return (
                f"with kpt_shape [{count}, {dims}] a pose label needs {5 + count * dims}: "
                f"class x_center y_center width height, then {count} keypoint(s) of {each}"
            )
        return "a detection label needs 5: class x_center y_center width height"

    def fits(self, value_count: int) -> bool:
        if self.task == "segment":
            return value_count >= 7 and value_count % 2 == 1
        if self.task == "obb":
            return value_count == 9
        if self.task == "pose" and self.keypoints is not None:
            return value_count == 5 + self.keypoints[0] * self.keypoints[1]
        return value_count == 5


DETECT = LabelFormat()


def line_shape(value_count: int) -> str | None:
    """What a label line of this many values looks like to a reader, if anything."""
    if value_count == 5:
        return "a detection box"
    if value_count == 9:
        return "an oriented box or a 4-point polygon"
    if value_count >= 7 and value_count % 2 == 1:
        return f"a polygon of {(value_count - 1) // 2} points"
    return None


def parse_label_file(
    path: Path, rel: str, class_count: int, limits: Limits | None = None, label_format: LabelFormat = DETECT
) -> tuple[list[LabelRow], list[Problem]]:
    """Parse a label file line by line for the task of ``label_format``, saying what is
    wrong with each bad line (up to MAX_PROBLEMS_PER_FILE of them)."""
    limits = limits or Limits.from_settings()
    rows: list[LabelRow] = []
    problems: list[Problem] = []
    raw = read_capped(path, limits.max_label_bytes)
    if raw is None:
        message = f"This label file is larger than {human_bytes(limits.max_label_bytes)} (DATASET_MAX_LABEL_BYTES)."
        return rows, [Problem(message, rel)]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return rows, [Problem("This label file is not UTF-8 text. Save it as plain text.", rel)]
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if number > MAX_LABEL_LINES:
            problems.append(Problem(f"This label file has more than {MAX_LABEL_LINES:,} lines.", rel, number))
            break
        if len(problems) >= MAX_PROBLEMS_PER_FILE:
            problems.append(Problem(f"Checking stopped after {MAX_PROBLEMS_PER_FILE} bad lines in this file.", rel))
            break
        fields = line.split()
        if not fields:
            continue
        row_or_message = _parse_line(fields, class_count, label_format)
        if isinstance(row_or_message, str):
            problems.append(Problem(row_or_message, rel, number))
        else:
            rows.append(row_or_message)
    return rows, problems


def _parse_line(fields: list[str], class_count: int, label_format: LabelFormat) -> LabelRow | str:
    """The line's row, or what is wrong with it."""
    if not label_format.fits(len(fields)):
        return _count_message(len(fields), label_format)
    try:
        values = [float(value) for value in fields]
    except ValueError:
        bad = next(value for value in fields if not _is_number(value))
        return f"'{bad}' is not a number. Every value on a label line must be a number."
    if not all(math.isfinite(value) for value in values):
        return "This line holds an infinite or NaN value."
    class_value, last_class = values[0], class_count - 1
    if class_value != int(class_value) or not 0 <= class_value <= last_class:
        return (
            f"Class {fields[0]} is not one of the {class_count} classes in data.yaml "
            f"(0 to {last_class}). Fix the class number or add the class to names:."
        )
    class_id = int(class_value)
    if label_format.task in ("segment", "obb"):
        return _polygon_row(class_id, values[1:], label_format.task)
    box = values[1:5]
    if any(not _normalised(value) for value in box):
        return (
            "The box coordinates must be between 0 and 1 (normalised by the image width and height); "
            f"this line has {' '.join(fields[1:5])}."
        )
    if label_format.task == "pose" and label_format.keypoints is not None:
        return _pose_row(class_id, box, values[5:], label_format.keypoints[1])
    x, y, w, h = box
    return LabelRow(class_id, x, y, w, h)


def _count_message(count: int, label_format: LabelFormat) -> str:
    shape = line_shape(count)
    if label_format.task == "segment" and count >= 7 and count % 2 == 0:
        return f"This line has {count} values, so its points are not whole x y pairs; {label_format.expected_values()}."
    if label_format.task == "segment" and count in (3, 5):
        shape = "fewer than 3 points" if count == 3 else "a detection box, or a polygon of only 2 points"
    if label_format.task == "pose" and label_format.keypoints is not None:
        dims = label_format.keypoints[1]
        shape = f"a box and {(count - 5) // dims} keypoint(s)" if count > 5 and (count - 5) % dims == 0 else None
    described = f" ({shape})" if shape else ""
    return f"This line has {count} values{described}; {label_format.expected_values()}."


def _normalised(value: float) -> bool:
    return -COORD_TOLERANCE <= value <= 1 + COORD_TOLERANCE


def _polygon_row(class_id: int, coords: list[float], task: str) -> LabelRow | str:
    points = tuple(zip(coords[0::2], coords[1::2], strict=True))
    what = "corner" if task == "obb" else "point"
    for index, (x, y) in enumerate(points, start=1):
        if not (_normalised(x) and _normalised(y)):
            return (
                f"The {what}s must be between 0 and 1 (normalised by the image width and height); "
                f"{what} {index} is {_number(x)} {_number(y)}."
            )
    if abs(_shoelace_area(points)) < MIN_POLYGON_AREA:
        shape = "four corners" if task == "obb" else "polygon's points"
        return f"The {shape} enclose no area (they lie on one line or on one point)."
    xs, ys = [x for x, _ in points], [y for _, y in points]
    left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
    return LabelRow(class_id, (left + right) / 2, (top + bottom) / 2, right - left, bottom - top, points=points)


def _pose_row(class_id: int, box: list[float], values: list[float], dims: int) -> LabelRow | str:
    keypoints: list[tuple[float, float, float]] = []
    for index in range(len(values) // dims):
        x, y = values[index * dims], values[index * dims + 1]
        visibility = values[index * dims + 2] if dims == 3 else 2.0
        if dims == 3 and visibility not in (0, 1, 2):
            return (
                f"Keypoint {index} has visibility {_number(visibility)}; it must be 0 (not labelled), "
                "1 (labelled but hidden) or 2 (visible)."
            )
        if not (_normalised(x) and _normalised(y)):
            return (
                f"Keypoint {index} is at {_number(x)} {_number(y)}; keypoint coordinates must be between 0 and 1 "
                "(normalised by the image width and height; use 0 0 for a keypoint that is not labelled)."
            )
        keypoints.append((x, y, visibility))
    x, y, w, h = box
    return LabelRow(class_id, x, y, w, h, keypoints=tuple(keypoints))


def _shoelace_area(points: tuple[tuple[float, float], ...]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True))


def _number(value: float) -> str:
    return f"{value:g}"


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_image_decodes(path: Path) -> tuple[int, int]:
    """The image's (width, height); raises ValueError with a plain reason if it does not decode."""
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except Image.DecompressionBombError:
        raise ValueError("it has too many pixels") from None
    except Exception as error:
        raise ValueError(str(error) or type(error).__name__) from None
    if width < 10 or height < 10:
        raise ValueError(f"it is {width}x{height} pixels; images must be at least 10x10")
    return width, height
