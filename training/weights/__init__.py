"""Starting weights: pretrained (installed by an operator), one of the user's own
models, or an uploaded .pt (see docs/weights.md).

Imports run one way: ``uploads`` -> ``task``; ``install``, ``starting`` and
``pretrained`` beside them, all over ``architectures``. Nothing here imports torch
or ultralytics at import time: the upload check and the installer reach the safe
loader (``training.yolo.checkpoints``) inside the function that needs it.
"""

from training.weights.architectures import shipped_names, task_of
from training.weights.pretrained import has_local_weights, weights_path
from training.weights.starting import (
    StartWeights,
    StartWeightsGone,
    create_model,
    find_start,
    start_key,
    start_options,
)
from training.weights.task import WeightsRefused, run_weights_check, validate_weights, weights_key
from training.weights.uploads import create_weights_upload, delete_weights_upload, display_name

__all__ = [
    "StartWeights",
    "StartWeightsGone",
    "WeightsRefused",
    "create_model",
    "create_weights_upload",
    "delete_weights_upload",
    "display_name",
    "find_start",
    "has_local_weights",
    "run_weights_check",
    "shipped_names",
    "start_key",
    "start_options",
    "task_of",
    "validate_weights",
    "weights_key",
    "weights_path",
]
