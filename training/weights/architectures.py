"""Architecture names for every task, as ultralytics ships their YAMLs.

A name is ``<family><scale><suffix>``: ``yolo11n`` detects, ``yolo11n-seg``
segments, ``-pose``, ``-cls`` and ``-obb`` likewise. The task comes from the
suffix. Which of these the site offers is the catalogue's business
(``training.catalogue``); weights are matched against all of them, so a file of a
task the site does not offer yet is named correctly when it is refused.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from training.catalogue import FAMILIES, SCALES, ultralytics_dir

TASK_SUFFIXES: dict[str, str] = {"detect": "", "segment": "-seg", "pose": "-pose", "classify": "-cls", "obb": "-obb"}


def task_of(architecture: str) -> str:
    """The task of an architecture name (``yolo11n-pose`` -> ``pose``); "" if unknown."""
    suffix = architecture[architecture.index("-") :] if "-" in architecture else ""
    return next((task for task, known in TASK_SUFFIXES.items() if known == suffix), "")


@cache
def shipped_names() -> tuple[str, ...]:
    """Every architecture name whose YAML ships in the installed ultralytics, each task."""
    models_dir = ultralytics_dir() / "cfg" / "models"
    names: list[str] = []
    for prefix, _, yaml_path in FAMILIES:
        folder = (models_dir / yaml_path).parent
        for suffix in TASK_SUFFIXES.values():
            path = folder / f"{prefix}{suffix}.yaml"
            if path.is_file():
                names.extend(f"{prefix}{scale}{suffix}" for scale in SCALES if scale in _scales(path))
    return tuple(names)


def _scales(path: Path) -> dict[str, object]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    scales = loaded.get("scales") or {}
    return scales if isinstance(scales, dict) else {}
