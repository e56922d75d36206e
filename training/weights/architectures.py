"""Architecture names for every task, as ultralytics ships their YAMLs.

A name is ``<family><scale><suffix>``: ``yolo11n`` detects, ``yolo11n-seg``
segments, ``-pose``, ``-cls`` and ``-obb`` likewise. The task comes from the
suffix (``training.catalogue.ARCHITECTURE_TASKS``).
"""

from __future__ import annotations

from functools import cache

from training.catalogue import ARCHITECTURE_TASKS, shipped_architectures


def task_of(architecture: str) -> str:
    """The task of an architecture name (``yolo11n-pose`` -> ``pose``); "" if unknown."""
    suffix = architecture[architecture.index("-") :] if "-" in architecture else ""
    return next((task for task, known in ARCHITECTURE_TASKS.items() if known == suffix), "")


@cache
def shipped_names() -> tuple[str, ...]:
    """Every architecture name whose YAML ships in the installed ultralytics, each task."""
    return tuple(architecture.name for architecture in shipped_architectures())
