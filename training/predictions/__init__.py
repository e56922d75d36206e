"""The Predict tab: trying a trained model on one picture before downloading it.

The web side only: checking the picture (``pictures``), keeping it and the result for
a while in Redis (``store``), and the services the views call (``services``). The
prediction runs on a worker that consumes the ``predict`` queue
(``training.engine.predictions`` and ``training.yolo.predict``). See docs/predict.md.

Imports run one way: ``forms`` -> ``services`` -> ``pictures``/``store``.
"""

from training.predictions.pictures import PictureRefused, PredictUploadLimitHandler, check_picture, too_large_message
from training.predictions.services import (
    DEFAULT_CONF,
    DEFAULT_IOU,
    PREDICT_ACTOR,
    PREDICT_QUEUE,
    PredictionRefused,
    delete_saved,
    job_for,
    predict_again,
    predict_sample,
    predict_upload,
    save_prediction,
    validation_samples,
)
from training.predictions.store import Job, Status, result_image

__all__ = [
    "DEFAULT_CONF",
    "DEFAULT_IOU",
    "PREDICT_ACTOR",
    "PREDICT_QUEUE",
    "Job",
    "PictureRefused",
    "PredictUploadLimitHandler",
    "PredictionRefused",
    "Status",
    "check_picture",
    "delete_saved",
    "job_for",
    "predict_again",
    "predict_sample",
    "predict_upload",
    "result_image",
    "save_prediction",
    "too_large_message",
    "validation_samples",
]
