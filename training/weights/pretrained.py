"""Pretrained weights on this machine: ``WEIGHTS_DIR/<architecture>.pt``.

``manage.py install_weights`` writes them (``training.weights.install``); nothing
downloads them at training time. Every training worker reads its own
``WEIGHTS_DIR``, so the operator installs them on each training machine (or shares
the folder)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from training.weights.architectures import shipped_names


def weights_path(architecture: str) -> Path:
    """Where an architecture's pretrained weights live; only shipped names become a file name."""
    if architecture not in shipped_names():
        raise ValueError(f"{architecture!r} is not an architecture ultralytics ships")
    return Path(settings.WEIGHTS_DIR) / f"{architecture}.pt"


def has_local_weights(architecture: str) -> bool:
    return architecture in shipped_names() and weights_path(architecture).is_file()
