"""Converting trained weights to a deployment format with ultralytics' exporter."""

from __future__ import annotations

from pathlib import Path

from ultralytics import YOLO  # type: ignore[attr-defined]


def export_weights(weights: Path, export_format: str, imgsz: int, work_dir: Path) -> Path:
    """Export ``weights`` (a file inside ``work_dir`` with a fixed name: ultralytics
    writes the export next to it, named after it) and return the produced file."""
    produced = Path(YOLO(str(weights)).export(format=export_format, imgsz=imgsz, device="cpu")).resolve()
    if not produced.is_relative_to(work_dir.resolve()):
        raise RuntimeError("the exporter wrote outside its work folder")
    return produced
