"""Ultralytics' own dataset checks, for the validation task on a light worker (never
the web process): each returns ultralytics' complaint in words, or None."""

from __future__ import annotations

from pathlib import Path

from ultralytics.data.utils import check_det_dataset, verify_image_label

CORRUPT_PAIR_PREFIX = ": ignoring corrupt image/label: "


def image_label_error(image: Path, label: Path, class_count: int) -> str | None:
    """What ultralytics finds wrong with an image and its label file (format, size,
    duplicate boxes, class numbers); None when it would train on the pair."""
    checked = verify_image_label((str(image), str(label), "", False, class_count, 0, 3, False))
    if not checked[8]:
        return None
    return str(checked[9]).split(CORRUPT_PAIR_PREFIX, 1)[-1]


def data_yaml_error(data_yaml: Path) -> str | None:
    """What ultralytics' data.yaml check refuses (downloads off); None when it accepts it."""
    try:
        check_det_dataset(str(data_yaml), autodownload=False)
    except Exception as error:
        # Without the emoji ultralytics puts in its messages.
        return "".join(ch for ch in str(error) if ord(ch) < 0x2000).strip()
    return None
