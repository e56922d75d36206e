"""Converting trained weights to a deployment format with ultralytics' exporter.

Each export runs in a child interpreter (``python -m training.yolo.exports``) whose
current and temporary folder is the export's work folder: a converter that crashes
takes only the child with it, and what a converter leaves behind until its process
exits (coremltools' temporary packages, PNNX's debug files) stays in the work folder,
which the job removes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

EXPORT_TIMEOUT_SECONDS = 14 * 60  # under the export actor's 15-minute limit
PRODUCED_FILE = "produced.txt"  # where the child writes the path of what it exported
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def export_weights(weights: Path, export_format: str, imgsz: int, work_dir: Path) -> Path:
    """Export ``weights`` (a file inside ``work_dir`` with a fixed name: ultralytics
    writes the export next to it, named after it) and return what it produced: a file
    (ONNX, TorchScript) or a folder (OpenVINO, NCNN, CoreML)."""
    command = [sys.executable, "-m", __name__, str(weights.resolve()), export_format, str(imgsz)]
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "TMPDIR": str(work_dir), "PYTHONPATH": python_path}
    try:
        child = subprocess.run(
            command, cwd=work_dir, env=environment, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the exporter took longer than {EXPORT_TIMEOUT_SECONDS // 60} minutes") from None
    if child.returncode != 0:
        logger.warning("%s export failed:\n%s\n%s", export_format, child.stdout[-4000:], child.stderr[-4000:])
        raise RuntimeError(failure_reason(child.returncode, child.stderr))
    produced = (work_dir / (work_dir / PRODUCED_FILE).read_text(encoding="utf-8")).resolve()
    if not produced.is_relative_to(work_dir.resolve()):
        raise RuntimeError("the exporter wrote outside its work folder")
    return produced


def failure_reason(returncode: int, stderr: str) -> str:
    """The exception that ended the child (the last line of its traceback), or the
    signal that killed it."""
    if returncode < 0:
        return f"the exporter crashed (signal {-returncode})"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"the exporter exited with status {returncode}"


def main(weights: str, export_format: str, imgsz: str) -> None:
    # OpenVINO's converter reports usage to Google Analytics unless a consent file in
    # the home folder says no; without its telemetry package it uses its own no-op stub.
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    from ultralytics import YOLO  # type: ignore[attr-defined]

    produced = YOLO(weights).export(format=export_format, imgsz=int(imgsz), device="cpu")
    Path(PRODUCED_FILE).write_text(str(produced), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
