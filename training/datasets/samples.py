"""Sample pictures: a dataset's images with their labels drawn for the task: boxes,
translucent polygon masks (segmentation), rotated boxes (OBB), keypoints (pose), or the
class name (classification)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from training.datasets.labels import LabelRow

SAMPLE_SIDE = 320
MASK_ALPHA = 96  # of 255: the image shows through a segmentation mask
KEYPOINT_RADIUS = 3

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


def render_sample(
    image_path: Path, rows: list[LabelRow], names: list[str], *, task: str = "detect", class_id: int | None = None
) -> bytes:
    """A JPEG thumbnail of the image with its labels drawn for ``task``; a classification
    sample (``class_id``) carries its class name."""
    with Image.open(image_path) as opened:
        image = opened.convert("RGB")
    image.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    width, height = image.size
    font = ImageFont.load_default()
    if task in ("segment", "obb"):
        _draw_polygons(image, rows, filled=task == "segment")
    draw = ImageDraw.Draw(image)
    for row in rows:
        colour = class_colour(row.class_id)
        x0, y0 = (row.x - row.w / 2) * width, (row.y - row.h / 2) * height
        if task not in ("segment", "obb"):
            x1, y1 = (row.x + row.w / 2) * width, (row.y + row.h / 2) * height
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        for x, y, visibility in row.keypoints:
            if visibility > 0:
                cx, cy, r = x * width, y * height, KEYPOINT_RADIUS
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=(255, 255, 255))
        draw.text((x0 + 2, max(0, y0 - 11)), names[row.class_id], fill=colour, font=font)
    if class_id is not None:
        _draw_caption(draw, names[class_id], class_colour(class_id), font)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _draw_polygons(image: Image.Image, rows: list[LabelRow], *, filled: bool) -> None:
    """Outlines, and for masks a translucent fill, of each row's polygon (in place)."""
    width, height = image.size
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for row in rows:
        colour = class_colour(row.class_id)
        points = [(x * width, y * height) for x, y in row.points]
        draw.polygon(points, fill=(*colour, MASK_ALPHA) if filled else None, outline=(*colour, 255), width=2)
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def _draw_caption(
    draw: ImageDraw.ImageDraw,
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    left, top, right, bottom = draw.textbbox((4, 4), text, font=font)
    draw.rectangle((left - 3, top - 3, right + 3, bottom + 3), fill=(0, 0, 0))
    draw.text((4, 4), text, fill=colour, font=font)
