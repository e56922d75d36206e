"""An architecture's parameter count and GFLOPs, measured by building the model
from its YAML as ultralytics ships it (the YAML's own class count: 80 for detection
and segmentation, 1000 for classification, ...) the way ultralytics reports them.

Runs in ``manage.py measure_catalogue``, never in the web process, which only reads
the cached result (``training.catalogue.catalogue``)."""

from __future__ import annotations

import logging

from ultralytics.nn.tasks import (
    BaseModel,
    ClassificationModel,
    DetectionModel,
    OBBModel,
    PoseModel,
    SegmentationModel,
)
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import get_flops

MODEL_CLASSES: dict[str, type[BaseModel]] = {
    "detect": DetectionModel,
    "segment": SegmentationModel,
    "pose": PoseModel,
    "classify": ClassificationModel,
    "obb": OBBModel,
}


def measure(model_yaml: str, task: str, imgsz: int) -> tuple[int, float]:
    """Build the ``task`` model from ``model_yaml`` (no weights): (parameters, GFLOPs at ``imgsz``)."""
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # a classification model prints its summary even when not verbose
    try:
        model = MODEL_CLASSES[task](model_yaml, verbose=False)
    finally:
        LOGGER.setLevel(level)
    params = sum(int(p.numel()) for p in model.parameters())
    gflops = round(float(get_flops(model, imgsz)), 1)  # type: ignore[no-untyped-call]
    return params, gflops
