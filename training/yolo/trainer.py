"""Building an ultralytics trainer, mapping the platform's arguments onto it, and
reading its metrics: everything the runner needs from ultralytics and torch."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from ultralytics import YOLO  # type: ignore[attr-defined]
from ultralytics import settings as ultralytics_settings

# The trainer events the platform hooks, in the order ultralytics fires them.
CALLBACK_EVENTS = (
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_end",
    "on_val_batch_end",
    "on_model_save",
    "on_fit_epoch_end",
)

# ultralytics' validation metrics -> the names the platform stores with each epoch
# (training.task_metrics). Box metrics end in (B) for every box task (rotated boxes for
# obb), mask metrics in (M) for segment, keypoint metrics in (P) for pose; classify
# reports top-1 and top-5 accuracy (ultralytics.utils.metrics, each class's ``keys``).
_MEASURES = {"precision": "precision", "recall": "recall", "mAP50": "map50", "mAP50-95": "map50_95"}
_KINDS = {"B": "", "M": "mask_", "P": "pose_"}
METRIC_NAMES = {
    **{
        f"metrics/{measure}({kind})": f"{prefix}{name}"
        for kind, prefix in _KINDS.items()
        for measure, name in _MEASURES.items()
    },
    "metrics/accuracy_top1": "top1",
    "metrics/accuracy_top5": "top5",
    "lr/pg0": "lr",
}
# Losses are named by the task's criterion (ultralytics.utils.loss: box_loss, seg_loss,
# pose_loss, kobj_loss, angle_loss, cls_loss, dfl_loss or l1_loss, ...; classify's is
# "loss"), as "train/<name>" and "val/<name>"; they are stored as train_<name>, val_<name>.
LOSS_KEY = re.compile(r"^(train|val)/([a-z0-9_]+)$")


def build(weights: Path | str, callbacks: object) -> Any:
    """A YOLO model from weights, a checkpoint or an architecture YAML, with the
    platform's callbacks (an object with one method per ``CALLBACK_EVENTS`` name)
    registered and ultralytics' settings sync off."""
    disable_settings_sync()
    yolo = YOLO(str(weights))
    for event in CALLBACK_EVENTS:
        handler: Callable[[Any], None] = getattr(callbacks, event)
        yolo.add_callback(event, handler)
    return yolo


def disable_settings_sync() -> None:
    """Turn off ultralytics' settings sync (analytics); the environment that
    ``hubsite.ultralytics_offline`` sets covers the rest."""
    if ultralytics_settings.get("sync", True):
        ultralytics_settings.update({"sync": False})  # type: ignore[no-untyped-call]


def train(yolo: Any, arguments: dict[str, Any]) -> Path:
    """Train and return the path of the best weights."""
    yolo.train(**arguments)
    return Path(yolo.trainer.best)


def use_all_cores(trainer: Any) -> None:
    """ultralytics leaves one core idle; a dedicated training worker wants them all."""
    if trainer.device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)


def epoch_metrics(trainer: Any) -> dict[str, float]:
    """The epoch's losses and metrics under stable names (whatever the task)."""
    raw: dict[str, Any] = {
        **trainer.label_loss_items(trainer.tloss, prefix="train"),
        **(trainer.metrics or {}),
        **(trainer.lr or {}),
    }
    metrics: dict[str, float] = {}
    for key, value in raw.items():
        loss = LOSS_KEY.match(key)
        name = f"{loss.group(1)}_{loss.group(2)}" if loss else METRIC_NAMES.get(key)
        if name is not None:
            number = float(value)
            metrics[name] = number if math.isfinite(number) else 0.0
    return metrics


def platform_arguments(data_yaml: Path, save_dir: Path, time_left_seconds: int | None) -> dict[str, Any]:
    """Arguments the platform controls; users cannot set these. ``time`` (hours) is a
    Timed session's remaining budget; ultralytics also takes it on resume."""
    arguments: dict[str, Any] = {
        "data": str(data_yaml),
        "save_dir": str(save_dir),
        "exist_ok": True,
        "save": True,  # checkpoints every epoch: what Stop, Resume and recovery stand on
        "device": settings.TRAINING_DEVICE or None,
        "workers": settings.TRAINING_DATALOADER_WORKERS,
        "plots": False,
        "verbose": False,
    }
    if time_left_seconds is not None:
        arguments["time"] = time_left_seconds / 3600
    return {key: value for key, value in arguments.items() if value is not None}


def set_resume_target(checkpoint: Path, target_epochs: int) -> Path:
    """Set a checkpoint's target epochs in place (resume ignores ``epochs=``) and drop
    a Timed budget it carried (the session passes its own)."""
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)  # our own checkpoint
    train_args = loaded.get("train_args") or {}
    train_args["epochs"] = target_epochs
    train_args.pop("time", None)
    loaded["train_args"] = train_args
    temporary = checkpoint.with_suffix(".partial")
    torch.save(loaded, temporary)
    temporary.replace(checkpoint)
    return checkpoint
