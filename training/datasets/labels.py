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
    class_id: int
    x: float
    y: float
    w: float
    h: float


def parse_label_file(
    path: Path, rel: str, class_count: int, limits: Limits | None = None
) -> tuple[list[LabelRow], list[Problem]]:
    """Parse a detection label file line by line, saying what is wrong with each bad line
    (up to MAX_PROBLEMS_PER_FILE of them)."""
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
    last_class = class_count - 1
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
        if len(fields) != 5:
            hint = (
                " It looks like a segmentation polygon; only detection datasets are supported so far."
                if len(fields) > 6 and len(fields) % 2 == 1
                else ""
            )
            problems.append(
                Problem(
                    f"This line has {len(fields)} values; a detection label needs 5: "
                    f"class x_center y_center width height.{hint}",
                    rel,
                    number,
                )
            )
            continue
        try:
            values = [float(value) for value in fields]
        except ValueError:
            bad = next(value for value in fields if not _is_number(value))
            problems.append(
                Problem(f"'{bad}' is not a number. Every value on a label line must be a number.", rel, number)
            )
            continue
        if not all(math.isfinite(value) for value in values):
            problems.append(Problem("This line holds an infinite or NaN value.", rel, number))
            continue
        class_value = values[0]
        if class_value != int(class_value) or not 0 <= class_value <= last_class:
            problems.append(
                Problem(
                    f"Class {fields[0]} is not one of the {class_count} classes in data.yaml "
                    f"(0 to {last_class}). Fix the class number or add the class to names:.",
                    rel,
                    number,
                )
            )
            continue
        coords = values[1:]
        if any(value < -COORD_TOLERANCE or value > 1 + COORD_TOLERANCE for value in coords):
            problems.append(
                Problem(
                    "The box coordinates must be between 0 and 1 (normalised by the image width and height); "
                    f"this line has {' '.join(fields[1:])}.",
                    rel,
                    number,
                )
            )
            continue
        rows.append(LabelRow(int(class_value), *coords))
    return rows, problems


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
