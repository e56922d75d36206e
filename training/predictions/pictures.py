"""Checking a picture a user wants to try a model on, before it goes anywhere: its
size in bytes, its format, its pixels, and that it decodes whole. The same rules as a
dataset's images (training/datasets/labels.py), with the Predict tab's own limits."""

from __future__ import annotations

import io
from dataclasses import dataclass

from django.conf import settings
from PIL import Image

from training.datasets import human_bytes
from training.forms import UploadLimitHandler

# Formats both Pillow (here) and OpenCV (on the worker) read; the names Pillow gives them.
PICTURE_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "BMP": "BMP", "WEBP": "WebP", "TIFF": "TIFF"}
FORMATS_IN_WORDS = "JPEG, PNG, BMP, WebP or TIFF"
MIN_SIDE = 10  # as for dataset images


class PictureRefused(ValueError):
    pass


class PredictUploadLimitHandler(UploadLimitHandler):
    """The upload guard for a picture to predict on: PREDICT_MAX_UPLOAD_BYTES."""

    limit_setting = "PREDICT_MAX_UPLOAD_BYTES"


@dataclass(frozen=True)
class PictureFacts:
    width: int
    height: int
    format: str


def too_large_message() -> str:
    return f"The picture is larger than the {human_bytes(settings.PREDICT_MAX_UPLOAD_BYTES)} limit: use a smaller one."


def check_picture(data: bytes) -> PictureFacts:
    """The picture's facts, or PictureRefused saying in words what is wrong with it.
    Its pixels are counted from the header, before anything is decoded."""
    if not data:
        raise PictureRefused("The file is empty: choose a picture.")
    if len(data) > settings.PREDICT_MAX_UPLOAD_BYTES:
        raise PictureRefused(too_large_message())
    not_a_picture = PictureRefused(f"This file is not a picture that can be read: use {FORMATS_IN_WORDS}.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format or "", image.size
    except Image.DecompressionBombError:
        raise PictureRefused(_too_many_pixels_message()) from None
    except Exception:  # Pillow raises many kinds (and ultralytics' patch of Image.open, in a worker, more)
        raise not_a_picture from None
    if kind not in PICTURE_FORMATS:
        raise not_a_picture
    if width * height > settings.PREDICT_MAX_PIXELS:
        raise PictureRefused(_too_many_pixels_message(width, height))
    if width < MIN_SIDE or height < MIN_SIDE:
        raise PictureRefused(f"The picture is {width}x{height} pixels; it must be at least {MIN_SIDE}x{MIN_SIDE}.")
    _check_decodes(data)
    return PictureFacts(width=width, height=height, format=PICTURE_FORMATS[kind])


def _check_decodes(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as error:
        reason = str(error) or type(error).__name__
        raise PictureRefused(f"The picture is damaged or incomplete ({reason}): try another file.") from None


def _too_many_pixels_message(width: int | None = None, height: int | None = None) -> str:
    size = f"{width}x{height} pixels" if width is not None else "too many pixels"
    return f"The picture is {size}; the limit is {settings.PREDICT_MAX_PIXELS:,} pixels: use a smaller one."
