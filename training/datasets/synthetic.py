"""Small synthetic datasets of every task in the Ultralytics HUB zip format.

Coloured shapes (circle, square, triangle, diamond, ...) on noisy backgrounds, one
shape kind and colour per class. The demo, the tests and the benchmarks all train on
them: they are learnable in a few dozen CPU epochs and need no download.

- detect: the shapes with their boxes (``class x y w h``).
- segment: the shapes drawn as polygons, labelled with those polygons.
- obb: rectangles turned by a random angle, one length to width ratio per class,
  labelled with their four corners.
- pose: triangles whose apex slides along the top edge, labelled with their box and
  three keypoints (apex, right, left; ``kpt_shape: [3, 3]``, ``flip_idx: [0, 2, 1]``).
- classify: one large shape per image, in a folder per class.

Layout of the zip (data.yaml at the root; classify has none)::

    data.yaml
    images/train/img_00000.jpg ...    labels/train/img_00000.txt ...
    images/val/...                     labels/val/...

    train/<class>/img_00000.jpg ...    val/<class>/...          (classify)
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# (name, RGB colour, drawing kind); a class beyond this list reuses a kind with a new colour.
CLASS_STYLES: tuple[tuple[str, tuple[int, int, int], str], ...] = (
    ("circle", (220, 40, 40), "circle"),
    ("square", (40, 170, 60), "square"),
    ("triangle", (40, 80, 220), "triangle"),
    ("diamond", (230, 190, 30), "diamond"),
    ("ring", (200, 40, 200), "ring"),
    ("cross", (30, 200, 200), "cross"),
    ("bar", (250, 130, 20), "bar"),
    ("dot-square", (120, 60, 20), "square"),
)
MAX_CLASSES = 20
TASKS = ("detect", "segment", "pose", "obb", "classify")
MAX_IMAGE_SIZE = 2048


def class_names(classes: int) -> list[str]:
    names = [style[0] for style in CLASS_STYLES]
    return [names[i] if i < len(names) else f"shape{i}" for i in range(classes)]


def _style(class_id: int) -> tuple[tuple[int, int, int], str]:
    if class_id < len(CLASS_STYLES):
        _, colour, kind = CLASS_STYLES[class_id]
        return colour, kind
    rng = np.random.default_rng(1000 + class_id)
    red, green, blue = (int(c) for c in rng.integers(30, 250, size=3))
    kinds = [style[2] for style in CLASS_STYLES]
    return (red, green, blue), kinds[class_id % len(kinds)]


def _draw_shape(
    draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]
) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
    elif kind == "ring":
        width = max(2, (x1 - x0) // 5)
        draw.ellipse(box, outline=colour, width=width)
    elif kind == "cross":
        t = max(2, (x1 - x0) // 4)
        draw.rectangle((cx - t / 2, y0, cx + t / 2, y1), fill=colour)
        draw.rectangle((x0, cy - t / 2, x1, cy + t / 2), fill=colour)
    else:  # bar: a wide rectangle filling the box
        draw.rectangle(box, fill=colour)


Box = tuple[int, int, int, int]
Point = tuple[float, float]


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(60, 190, size=3)
    noise = rng.normal(0, 18, size=(size, size, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _placements(rng: np.random.Generator, size: int, classes: int) -> Iterator[tuple[int, Box]]:
    """One to three non-overlapping (class, box) placements; a placement that finds no
    free room after ten tries is skipped."""
    placed: list[Box] = []
    for _ in range(int(rng.integers(1, 4))):
        class_id = int(rng.integers(0, classes))
        _colour, kind = _style(class_id)
        for _attempt in range(10):
            side = int(rng.integers(max(6, size // 6), max(7, size // 3) + 1))
            width = side * 2 if kind == "bar" else side
            height = max(4, side // 2) if kind == "bar" else side
            width = min(width, size - 2)
            x0 = int(rng.integers(0, size - width))
            y0 = int(rng.integers(0, size - height))
            box = (x0, y0, x0 + width, y0 + height)
            if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed):
                break
        else:
            continue
        placed.append(box)
        yield class_id, box


def _numbers(values: Iterable[float]) -> str:
    return " ".join(f"{value:.6f}" for value in values)


def _normalised(points: Iterable[Point], size: int) -> list[float]:
    return [min(1.0, max(0.0, coordinate / size)) for point in points for coordinate in point]


def _box_label(class_id: int, box: Box, size: int) -> str:
    x0, y0, x1, y1 = box
    return f"{class_id} {_numbers(((x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size))}"


def _outline(kind: str, box: Box) -> list[Point]:
    """The shape's outline as a polygon (curves as 24 points), for segmentation."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if kind in ("circle", "ring"):
        rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
        return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    if kind == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if kind == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    if kind == "cross":
        t = max(2, (x1 - x0) // 4) / 2
        return [
            (cx - t, y0), (cx + t, y0), (cx + t, cy - t), (x1, cy - t), (x1, cy + t), (cx + t, cy + t),
            (cx + t, y1), (cx - t, y1), (cx - t, cy + t), (x0, cy + t), (x0, cy - t), (cx - t, cy - t),
        ]  # fmt: skip
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _rotated_rectangle(rng: np.random.Generator, class_id: int, box: Box) -> list[Point]:
    """A rectangle turned by a random angle inside ``box``; its length to width ratio
    (1, 1.8 or 2.6) tells the classes apart as much as the colour does."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    length = 0.7 * min(x1 - x0, y1 - y0)
    width = length / (1 + 0.8 * (class_id % 3))
    angle = float(rng.uniform(0, math.pi))
    cos, sin = math.cos(angle), math.sin(angle)
    corners = ((-length / 2, -width / 2), (length / 2, -width / 2), (length / 2, width / 2), (-length / 2, width / 2))
    return [(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos) for dx, dy in corners]


def _keypoint_triangle(rng: np.random.Generator, box: Box) -> list[Point]:
    """A triangle filling ``box`` whose apex slides along the top edge: its keypoints
    are the apex, the right corner and the left corner (flip_idx [0, 2, 1])."""
    x0, y0, x1, y1 = box
    apex_x = x0 + float(rng.uniform(0.2, 0.8)) * (x1 - x0)
    return [(apex_x, y0), (x1, y1), (x0, y1)]


def _make_image(
    rng: np.random.Generator, size: int, classes: int, task: str = "detect"
) -> tuple[Image.Image, list[str]]:
    """An image and its label lines in the format of ``task`` (not classify)."""
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    labels: list[str] = []
    for class_id, box in _placements(rng, size, classes):
        colour, kind = _style(class_id)
        if task == "detect":
            _draw_shape(draw, kind, box, colour)
            labels.append(_box_label(class_id, box, size))
        elif task == "segment":
            outline = _outline(kind, box)
            draw.polygon(outline, fill=colour)
            labels.append(f"{class_id} {_numbers(_normalised(outline, size))}")
        elif task == "obb":
            corners = _rotated_rectangle(rng, class_id, box)
            draw.polygon(corners, fill=colour)
            labels.append(f"{class_id} {_numbers(_normalised(corners, size))}")
        elif task == "pose":
            keypoints = _keypoint_triangle(rng, box)
            draw.polygon(keypoints, fill=colour)
            visible = [value for x, y in _pairs(_normalised(keypoints, size)) for value in (x, y, 2.0)]
            labels.append(f"{_box_label(class_id, box, size)} {_numbers(visible)}")
        else:
            raise ValueError(f"no label format for task {task!r}")
    return image, labels


def _pairs(values: list[float]) -> list[Point]:
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _make_class_image(rng: np.random.Generator, size: int, class_id: int) -> Image.Image:
    """One large shape of the class on a noisy background, for classification."""
    image = _background(rng, size)
    colour, kind = _style(class_id)
    side = int(rng.integers(size // 3, size * 2 // 3 + 1))
    height = max(4, side // 2) if kind == "bar" else side
    x0 = int(rng.integers(0, size - side))
    y0 = int(rng.integers(0, size - height))
    _draw_shape(ImageDraw.Draw(image), kind, (x0, y0, x0 + side, y0 + height), colour)
    return image


def data_yaml_text(names: list[str], task: str = "detect") -> str:
    lines = [
        "# Synthetic shapes dataset made by hubsite (training/datasets/synthetic.py)",
        "path: .",
        "train: images/train",
    ]
    lines += ["val: images/val"]
    if task == "pose":
        lines += ["kpt_shape: [3, 3]  # apex, right corner, left corner; x, y, visibility", "flip_idx: [0, 2, 1]"]
    lines += ["names:"]
    lines += [f"  {i}: {name}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


def write_synthetic_dataset(
    zip_path: Path,
    *,
    train_images: int = 32,
    val_images: int = 16,
    image_size: int = 128,
    classes: int = 3,
    seed: int = 0,
    task: str = "detect",
) -> Path:
    """Write a synthetic dataset zip of ``task`` (detect, segment, pose, obb or classify)
    to ``zip_path`` and return the path.

    Same arguments, same bytes: the generator is seeded and zip timestamps fixed."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be between 1 and {MAX_CLASSES}, not {classes}")
    if not 32 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be between 32 and {MAX_IMAGE_SIZE}, not {image_size}")
    if train_images < 1 or val_images < 1:
        raise ValueError("train_images and val_images must be at least 1")
    if task == "classify" and min(train_images, val_images) < classes:
        raise ValueError(f"a classification dataset needs at least one image per class ({classes}) in each split")
    rng = np.random.default_rng(seed)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = zip_path.with_name(zip_path.name + ".partial")
    names = class_names(classes)
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if task != "classify":
            _write(archive, "data.yaml", data_yaml_text(names, task).encode())
        for split, count in (("train", train_images), ("val", val_images)):
            for index in range(count):
                stem = f"img_{index:05d}"
                if task == "classify":
                    class_id = index % classes
                    _write(
                        archive,
                        f"{split}/{names[class_id]}/{stem}.jpg",
                        _jpeg(_make_class_image(rng, image_size, class_id)),
                    )
                    continue
                image, labels = _make_image(rng, image_size, classes, task)
                _write(archive, f"images/{split}/{stem}.jpg", _jpeg(image))
                _write(archive, f"labels/{split}/{stem}.txt", ("\n".join(labels) + "\n").encode())
    temporary.replace(zip_path)
    return zip_path


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)
