"""One prediction with a trained model on one picture, drawn the way ultralytics draws it.

A worker keeps the few models it used last in memory (keyed by the weights' storage
key, which changes whenever the weights do), so the sliders of the Predict tab re-run
in milliseconds instead of reloading the weights each time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from ultralytics import YOLO  # type: ignore[attr-defined]

LOADED_MODELS = 4
JPEG_QUALITY = 85
# The drawn result is kept in Redis for a while: its longer side is at most this.
MAX_DRAWN_SIDE = 1280
TOP_CLASSES = 5

_loaded: OrderedDict[str, Any] = OrderedDict()
# One prediction at a time per process: a YOLO object is not safe to share between
# threads, and the light worker's other jobs keep their share of the CPU.
_lock = threading.Lock()


@dataclass(frozen=True)
class Prediction:
    jpeg: bytes
    detections: list[dict[str, Any]]  # [{"class": name, "confidence": 0.93}], best first
    inference_ms: float
    width: int
    height: int


class UnreadablePicture(ValueError):
    pass


def predict(
    weights_key: str, fetch_weights: Callable[[], Path], picture: bytes, *, conf: float, iou: float, imgsz: int
) -> Prediction:
    """Run the model stored under ``weights_key`` on ``picture`` (encoded image bytes) on
    the CPU. ``fetch_weights`` downloads the weights and is called only when this process
    does not hold them yet; the file may be removed once it returns."""
    image = cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadablePicture("the picture could not be decoded")
    with _lock:
        model = _model(weights_key, fetch_weights)
        [result] = model.predict(source=image, conf=conf, iou=iou, imgsz=imgsz, device="cpu", verbose=False)
        drawn = _bounded(result.plot())
    encoded, buffer = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not encoded:
        raise RuntimeError("the drawn picture could not be encoded")
    height, width = image.shape[:2]
    return Prediction(
        jpeg=buffer.tobytes(),
        detections=_detections(result),
        inference_ms=float(result.speed.get("inference") or 0.0),
        width=int(width),
        height=int(height),
    )


def _bounded(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = MAX_DRAWN_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _model(weights_key: str, fetch_weights: Callable[[], Path]) -> Any:
    if weights_key in _loaded:
        _loaded.move_to_end(weights_key)
        return _loaded[weights_key]
    model = YOLO(str(fetch_weights()))
    _loaded[weights_key] = model
    while len(_loaded) > LOADED_MODELS:
        _loaded.popitem(last=False)
    return model


def _detections(result: Any) -> list[dict[str, Any]]:
    names: dict[int, str] = result.names
    if result.probs is not None:
        probs = result.probs
        return [
            {"class": names[int(index)], "confidence": round(float(confidence), 4)}
            for index, confidence in zip(probs.top5[:TOP_CLASSES], probs.top5conf.tolist(), strict=False)
        ]
    found = result.obb if result.obb is not None else result.boxes
    if found is None:
        return []
    pairs = zip(found.cls.tolist(), found.conf.tolist(), strict=True)
    detections = [{"class": names[int(cls)], "confidence": round(float(conf), 4)} for cls, conf in pairs]
    return sorted(detections, key=lambda found: -found["confidence"])


def forget_loaded_models() -> None:
    """Empty the cache of loaded models (tests; a worker never needs to)."""
    with _lock:
        _loaded.clear()
