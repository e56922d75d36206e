"""Reading an evaluation for the tab and the CSV: what classify shows, and how classes
without validation examples and the confusion matrix's background are treated."""

from __future__ import annotations

import csv
import io

from training.evaluation import class_rows, confusion_rows, figures, summary_csv
from training.models import ModelEvaluation


def classify_evaluation() -> ModelEvaluation:
    return ModelEvaluation(
        task="classify",
        status=ModelEvaluation.Status.DONE,
        metrics={"top1": 0.5, "top5": 1.0},
        per_class=[
            {"name": "cat", "images": 2, "top1": 1.0},
            {"name": "dog", "images": 2, "top1": 0.0},
            {"name": "owl", "images": 0, "top1": None},
        ],
        confusion={"labels": ["cat", "dog", "owl"], "counts": [[2, 2, 0], [0, 0, 0], [0, 0, 0]]},
    )


def test_classify_shows_top1_and_top5_and_ranks_classes_by_top1() -> None:
    evaluation = classify_evaluation()

    assert [(figure.label, figure.value) for figure in figures(evaluation)] == [
        ("Top-1 accuracy", 0.5),
        ("Top-5 accuracy", 1.0),
    ]
    rows = class_rows(evaluation)
    assert [(row.name, row.shown, row.below_overall, row.instances) for row in rows] == [
        ("dog", ["0.000"], True, None),
        ("cat", ["1.000"], False, None),
        ("owl", ["\u2013"], False, None),  # no validation images: last, unmarked
    ]


def test_classify_confusion_has_no_background_and_shares_are_of_the_true_class() -> None:
    rows = confusion_rows(classify_evaluation())

    assert [row.predicted for row in rows] == ["cat", "dog", "owl"]
    assert [(cell.count, cell.share, cell.diagonal) for cell in rows[0].cells] == [
        (2, 1.0, True),
        (2, 1.0, False),
        (0, 0.0, False),  # an empty column shares nothing, without dividing by zero
    ]
    assert [cell.diagonal for cell in rows[1].cells] == [False, True, False]


def test_a_box_tasks_background_is_never_a_right_answer() -> None:
    evaluation = ModelEvaluation(task="detect", confusion={"labels": ["cat", "background"], "counts": [[3, 4], [1, 0]]})

    rows = confusion_rows(evaluation)

    assert [[cell.diagonal for cell in row.cells] for row in rows] == [[True, False], [False, False]]
    assert [cell.share for cell in rows[0].cells] == [0.75, 1.0]


def test_the_classify_csv_has_images_and_top1_per_class() -> None:
    rows = list(csv.reader(io.StringIO(summary_csv(classify_evaluation()))))

    assert rows == [
        ["class", "images", "top1"],
        ["all", "", "0.50000"],
        ["cat", "2", "1.00000"],
        ["dog", "2", "0.00000"],
        ["owl", "0", ""],
    ]
