"""A model's evaluation on its dataset's validation split: asking for one (at the end of
every session with new weights, or on demand), giving up one lost with its worker,
and reading it for the Evaluation tab and the JSON and CSV summaries.

The evaluation runs on a light worker (``training.engine.evaluation`` through
``training.yolo.evaluation``) and is never billed. Imports run one way: ``summary`` ->
``reading``, with ``requesting`` beside them; nothing here imports the worker's code.
"""

from training.evaluation.reading import (
    Cell,
    ClassRow,
    ConfusionRow,
    Figure,
    PicturePair,
    class_figures,
    class_rows,
    confusion_rows,
    curves_of,
    figures,
    overall_figures,
    picture_pairs,
    ranked_by,
)
from training.evaluation.requesting import (
    EVALUATE_MODEL_ACTOR,
    EVALUATION_TIME_LIMIT_MS,
    LOST_EVALUATION_AFTER,
    LOST_EVALUATION_MESSAGE,
    EvaluationRefused,
    evaluate_new_weights,
    evaluate_now,
    give_up_lost_evaluations,
    picture_key,
    request_evaluation,
)
from training.evaluation.summary import summary_csv, summary_json

__all__ = [
    "EVALUATE_MODEL_ACTOR",
    "EVALUATION_TIME_LIMIT_MS",
    "LOST_EVALUATION_AFTER",
    "LOST_EVALUATION_MESSAGE",
    "Cell",
    "ClassRow",
    "ConfusionRow",
    "EvaluationRefused",
    "Figure",
    "PicturePair",
    "class_figures",
    "class_rows",
    "confusion_rows",
    "curves_of",
    "evaluate_new_weights",
    "evaluate_now",
    "figures",
    "give_up_lost_evaluations",
    "overall_figures",
    "picture_key",
    "picture_pairs",
    "ranked_by",
    "request_evaluation",
    "summary_csv",
    "summary_json",
]
