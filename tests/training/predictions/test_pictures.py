"""A picture is checked before it is kept or sent: bytes, format, pixels, whole."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image
from pytest_django.fixtures import Settings as SettingsWrapper

from training.predictions import PictureRefused, check_picture


def encoded(size: tuple[int, int] = (64, 48), kind: str = "JPEG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "white" if mode != "1" else 1).save(buffer, kind)
    return buffer.getvalue()


def noisy_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 64).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def a_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.yaml", "names: [a]\n")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "BMP", "WEBP", "TIFF"])
def test_pictures_in_the_formats_the_worker_reads_pass(kind: str) -> None:
    facts = check_picture(encoded(kind=kind))
    assert (facts.width, facts.height) == (64, 48)


BAD = {
    "empty": (b"", "The file is empty"),
    "a zip renamed .jpg": (a_zip(), "not a picture that can be read"),
    "text": (b"hello, this is not a picture" * 10, "not a picture that can be read"),
    "a GIF": (encoded(kind="GIF", mode="P"), "not a picture that can be read"),
    "truncated": (noisy_jpeg()[: len(noisy_jpeg()) // 2], "damaged or incomplete"),
    "tiny": (encoded((5, 5)), "it must be at least 10x10"),
    "huge dimensions": (encoded((9000, 9000), kind="PNG", mode="1"), "9000x9000 pixels; the limit is 40,000,000"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_pictures_are_refused_in_words(name: str) -> None:
    data, message = BAD[name]
    with pytest.raises(PictureRefused, match=message):
        check_picture(data)


def test_the_limits_come_from_the_settings(settings: SettingsWrapper) -> None:
    settings.PREDICT_MAX_PIXELS = 1000
    with pytest.raises(PictureRefused, match="64x48 pixels; the limit is 1,000 pixels"):
        check_picture(encoded())
    settings.PREDICT_MAX_UPLOAD_BYTES = 100
    with pytest.raises(PictureRefused, match="larger than the 100 bytes limit"):
        check_picture(encoded())
