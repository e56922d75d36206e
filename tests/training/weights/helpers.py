"""Weights files for the tests: real ultralytics checkpoints built from a shipped YAML
(untrained, no download), and hostile files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from ultralytics import YOLO  # type: ignore[attr-defined]


def write_yolo_checkpoint(path: Path, architecture: str = "yolo11n", names: list[str] | None = None) -> Path:
    """An ultralytics checkpoint as ``YOLO(...).save`` writes it, with these class names."""
    yolo = YOLO(f"{architecture}.yaml")
    if names is not None:  # the same architecture with a head for these classes, as training makes it
        model_class: Any = type(yolo.model)
        model: Any = model_class(f"{architecture}.yaml", nc=len(names), verbose=False)
        model.names = dict(enumerate(names))
        yolo.model = model
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return path


class WritesAFile:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def write_malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A .pt that looks like a checkpoint and would create ``marker`` if loaded unrestricted."""
    torch.save({"model": WritesAFile(marker), "train_args": {"task": "detect"}}, path)
    return path
