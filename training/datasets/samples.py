"""Sample pictures: a dataset's images with their boxes and class names drawn."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from training.datasets.labels import LabelRow

SAMPLE_SIDE = 320

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def render_sample(image_path: Path, rows: list[LabelRow], names: list[str]) -> bytes:
    """A JPEG thumbnail of the image with its boxes and class names drawn."""
    with Image.open(image_path) as opened:
        image = opened.convert("RGB")
    image.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for row in rows:
        colour = class_colour(row.class_id)
        x0, y0 = (row.x - row.w / 2) * width, (row.y - row.h / 2) * height
        x1, y1 = (row.x + row.w / 2) * width, (row.y + row.h / 2) * height
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        draw.text((x0 + 2, max(0, y0 - 11)), names[row.class_id], fill=colour, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
