"""A small synthetic detection dataset in the Ultralytics HUB zip format.

Coloured shapes (circle, square, triangle, diamond, ...) on noisy backgrounds, one
shape kind and colour per class, with YOLO label files. The demo, the tests and the
benchmarks all train on it: it is learnable in a few dozen CPU epochs (each class
differs in both shape and colour) and it needs no download.

Layout of the zip (data.yaml at the root)::

    data.yaml
    images/train/img_00000.jpg ...    labels/train/img_00000.txt ...
    images/val/...                     labels/val/...
"""

from __future__ import annotations

import io
import zipfile
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


def _make_image(rng: np.random.Generator, size: int, classes: int) -> tuple[Image.Image, list[str]]:
    base = rng.integers(60, 190, size=3)
    noise = rng.normal(0, 18, size=(size, size, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    labels: list[str] = []
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, 4))):
        class_id = int(rng.integers(0, classes))
        colour, kind = _style(class_id)
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
        _draw_shape(draw, kind, box, colour)
        cx, cy = (box[0] + box[2]) / 2 / size, (box[1] + box[3]) / 2 / size
        w, h = (box[2] - box[0]) / size, (box[3] - box[1]) / size
        labels.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return image, labels


def data_yaml_text(names: list[str]) -> str:
    lines = [
        "# Synthetic shapes dataset made by hubsite (training/datasets/synthetic.py)",
        "path: .",
        "train: images/train",
    ]
    lines += ["val: images/val", "names:"]
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
) -> Path:
    """Write a synthetic detection dataset zip to ``zip_path`` and return the path.

    Same arguments, same bytes: the generator is seeded and zip timestamps fixed."""
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be between 1 and {MAX_CLASSES}, not {classes}")
    if not 32 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be between 32 and {MAX_IMAGE_SIZE}, not {image_size}")
    if train_images < 1 or val_images < 1:
        raise ValueError("train_images and val_images must be at least 1")
    rng = np.random.default_rng(seed)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _write(archive, "data.yaml", data_yaml_text(class_names(classes)).encode())
        for split, count in (("train", train_images), ("val", val_images)):
            for index in range(count):
                image, labels = _make_image(rng, image_size, classes)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                stem = f"img_{index:05d}"
                _write(archive, f"images/{split}/{stem}.jpg", buffer.getvalue())
                _write(archive, f"labels/{split}/{stem}.txt", ("\n".join(labels) + "\n").encode())
    temporary.replace(zip_path)
    return zip_path


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)
