"""Small hand-made datasets of every task, as zip entries, for the tests."""

from __future__ import annotations

import io

from PIL import Image

from tests.training.datasets.helpers import Files

NAMES_YAML = "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: circle\n  1: square\n"
SPLITS = (("train", 4), ("val", 2))


def jpeg(colour: tuple[int, int, int] = (90, 120, 150), size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def yaml_task_files(lines: list[str], *, yaml_text: str = NAMES_YAML) -> Files:
    """data.yaml, 4 train and 2 val images, each image labelled with ``lines`` (line i of
    image n gets class (n + i) % 2 so both classes appear)."""
    files: Files = {"data.yaml": yaml_text.encode()}
    for split, count in SPLITS:
        for n in range(count):
            files[f"images/{split}/img_{n}.jpg"] = jpeg((40 * n, 100, 200 - 30 * n))
            text = "".join(f"{(n + i) % 2} {line}\n" for i, line in enumerate(lines))
            files[f"labels/{split}/img_{n}.txt"] = text.encode()
    return files


def segment_files() -> Files:
    return yaml_task_files(["0.2 0.2 0.6 0.25 0.5 0.7 0.25 0.6", "0.6 0.6 0.9 0.65 0.8 0.9"])


def obb_files() -> Files:
    return yaml_task_files(["0.3 0.1 0.6 0.3 0.4 0.6 0.1 0.4"])


POSE_YAML = NAMES_YAML + "kpt_shape: [3, 3]\nflip_idx: [1, 0, 2]\n"
POSE_LINE = "0.5 0.5 0.4 0.6 0.4 0.3 2 0.6 0.3 2 0.5 0.7 0"


def pose_files(*, yaml_text: str = POSE_YAML, line: str = POSE_LINE) -> Files:
    return yaml_task_files([line], yaml_text=yaml_text)


CLASSES = ("cat", "dog", "fox")


def classify_files(*, top: str = "", val: str = "val") -> Files:
    """train/<class>/ with 3 images and val/<class>/ with 1 image per class."""
    files: Files = {}
    for split, count in (("train", 3), (val, 1)):
        for c, name in enumerate(CLASSES):
            for n in range(count):
                files[f"{top}{split}/{name}/{name}_{n}.jpg"] = jpeg((80 * c, 60 * n, 120))
    return files
