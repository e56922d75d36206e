"""Ultralytics' own dataset checks, for the validation task on a light worker (never
the web process): each returns ultralytics' complaint in words, or None."""

from __future__ import annotations

from pathlib import Path

from ultralytics.data.utils import check_cls_dataset, check_det_dataset, verify_image, verify_image_label

CORRUPT_PAIR_PREFIX = ": ignoring corrupt image/label: "


def image_label_error(
    image: Path, label: Path, class_count: int, keypoints: tuple[int, int] | None = None
) -> str | None:
    """What ultralytics finds wrong with an image and its label file (format, size,
    duplicate boxes, class numbers; with ``keypoints``, pose's kpt_shape, the keypoint
    columns); None when it would train on the pair."""
    count, dims = keypoints or (0, 3)
    checked = verify_image_label((str(image), str(label), "", keypoints is not None, class_count, count, dims, False))
    if not checked[8]:
        return None
    return str(checked[9]).split(CORRUPT_PAIR_PREFIX, 1)[-1]


def image_error(image: Path) -> str | None:
    """What ultralytics' classification check finds wrong with an image; None when it
    would train on it."""
    _, found, corrupt, message = verify_image(((str(image), 0), ""))
    if found and not corrupt:
        return None
    return str(message).split(CORRUPT_PAIR_PREFIX, 1)[-1]


def data_yaml_error(data_yaml: Path) -> str | None:
    """What ultralytics' data.yaml check refuses (downloads off); None when it accepts it."""
    try:
        check_det_dataset(str(data_yaml), autodownload=False)
    except Exception as error:
        return _plain(error)
    return None


def classify_folder_error(root: Path) -> str | None:
    """What ultralytics' classification dataset check refuses in the folder holding
    train/ and val/; None when it accepts it."""
    try:
        check_cls_dataset(str(root))
    except Exception as error:
        return _plain(error)
    return None


def _plain(error: Exception) -> str:
    """The message without the emoji ultralytics puts in it."""
    return "".join(ch for ch in str(error) if ord(ch) < 0x2000).strip()
