"""Parameter counts and GFLOPs of the shipped architectures, measured by building
each model from its YAML (80 classes, 640 px, the way ultralytics reports them).

Runs in a management command or a worker, never in the web process, which only
reads the cached result (``training.catalogue.catalogue``)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops

from training.catalogue import Architecture, cache_path, shipped_architectures


def measure(architecture: Architecture) -> Architecture:
    """Build the model from its YAML (no weights) and count its parameters and GFLOPs."""
    model = DetectionModel(architecture.yaml, nc=80, verbose=False)  # type: ignore[no-untyped-call]
    params = sum(int(p.numel()) for p in model.parameters())
    gflops = round(float(get_flops(model, 640)), 1)  # type: ignore[no-untyped-call]
    return Architecture(architecture.name, architecture.family, architecture.scale, architecture.task, params, gflops)


def write_catalogue() -> list[Architecture]:
    """Measure every shipped architecture and replace the cache file atomically."""
    measured = [measure(architecture) for architecture in shipped_architectures()]
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".catalogue.", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump([asdict(a) for a in measured], out, indent=1)
    Path(temporary).replace(path)
    return measured
