"""Building an ultralytics trainer, mapping the platform's arguments onto it, and
reading its metrics: everything the runner needs from ultralytics and torch."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from ultralytics import YOLO  # type: ignore[attr-defined]
from ultralytics import settings as ultralytics_settings

from training import task_metrics

# The trainer events the platform hooks, in the order ultralytics fires them.
CALLBACK_EVENTS = (
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_end",
    "on_val_batch_end",
    "on_model_save",
    "on_fit_epoch_end",
)


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
    return task_metrics.stored_metrics(raw)


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
