"""An architecture's parameter count and GFLOPs, measured by building the model
from its YAML (80 classes, 640 px, the way ultralytics reports them).

Runs in ``manage.py measure_catalogue``, never in the web process, which only reads
the cached result (``training.catalogue.catalogue``)."""

from __future__ import annotations

from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops


def measure(model_yaml: str) -> tuple[int, float]:
    """Build the model from ``model_yaml`` (no weights): (parameters, GFLOPs)."""
    model = DetectionModel(model_yaml, nc=80, verbose=False)  # type: ignore[no-untyped-call]
    params = sum(int(p.numel()) for p in model.parameters())
    gflops = round(float(get_flops(model, 640)), 1)  # type: ignore[no-untyped-call]
    return params, gflops
