"""The evaluation job on real weights: a tiny model of each task, trained in this
process for one epoch on the synthetic dataset the test then evaluates it on.

The job measures the model overall and per class, draws the curves (not for
classify), counts the confusion matrix as ultralytics does (each validation instance
once, in its true class's column) and stores ultralytics' validation pictures under
the model's prefix; any error leaves a plain message."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.factories import TINY_TRAINING, make_ready_dataset
from tests.helpers import WorkerFactory, wait_for
from tests.training.evaluation.helpers import stored
from training.datasets import IMAGE_SUFFIXES, extract_archive, read_spec, storage_put, training_yaml_text
from training.datasets.synthetic import class_names, write_synthetic_dataset
from training.engine.evaluation import run_evaluation
from training.evaluation import class_figures, overall_figures, request_evaluation
from training.models import ModelEvaluation, YoloModel

pytestmark = [pytest.mark.training, pytest.mark.django_db]

ARCHITECTURES = {
    "detect": "yolo11n",
    "segment": "yolo11n-seg",
    "pose": "yolo11n-pose",
    "classify": "yolo11n-cls",
    "obb": "yolo11n-obb",
}
# The synthetic dataset both the training and the evaluation use (make_ready_dataset's arguments).
SPLITS = {"train_images": 8, "val_images": 4}
Status = ModelEvaluation.Status


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    """best.pt of a model of ``task`` trained for one epoch at 64 px (once per task)."""
    trained: dict[str, bytes] = {}

    def weights(task: str) -> bytes:
        if task not in trained:
            trained[task] = _train(task, tmp_path_factory.mktemp(f"trained-{task}"))
        return trained[task]

    return weights


def _train(task: str, work: Path) -> bytes:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    content = extracted(work, task)
    if task == "classify":
        data = str(content)
    else:
        data_yaml = work / "data.yaml"
        data_yaml.write_text(training_yaml_text(read_spec(content), content), encoding="utf-8")
        data = str(data_yaml)
    yolo = YOLO(f"{ARCHITECTURES[task]}.yaml")
    yolo.train(data=data, epochs=1, device="cpu", workers=0, plots=False, save_dir=str(work / "run"), **TINY_TRAINING)
    assert yolo.trainer is not None
    return Path(yolo.trainer.best).read_bytes()


def extracted(work: Path, task: str) -> Path:
    archive = write_synthetic_dataset(work / "data.zip", image_size=64, task=task, **SPLITS)
    content = work / "content"
    content.mkdir()
    extract_archive(archive, content)
    return content


def trained_model(user: User, tmp_path: Path, task: str, weights: bytes) -> YoloModel:
    dataset = make_ready_dataset(user, tmp_path, task=task, **SPLITS)
    model = YoloModel.objects.create(
        owner=user, name=f"shapes {task}", dataset=dataset, architecture=ARCHITECTURES[task], train_args=TINY_TRAINING
    )
    model.best_weights.name = storage_put(f"{model.storage_prefix}/best.pt", weights)
    model.epochs_completed = 1
    model.save()
    return model


def validation_counts(tmp_path: Path, task: str) -> list[int]:
    """Per class, the validation instances (boxes, polygons, poses) read from the label
    files, or for classify the validation images in each class's folder."""
    content = extracted(tmp_path / "counted", task)
    names = class_names(3)
    if task == "classify":
        return [
            sum(1 for path in (content / "val" / name).iterdir() if path.suffix.lower().lstrip(".") in IMAGE_SUFFIXES)
            for name in names
        ]
    per_class: collections.Counter[int] = collections.Counter()
    for label_file in (content / "labels" / "val").glob("*.txt"):
        for line in label_file.read_text().splitlines():
            if line.strip():
                per_class[int(line.split()[0])] += 1
    return [per_class[index] for index in range(len(names))]


def evaluated(model: YoloModel) -> ModelEvaluation:
    evaluation = request_evaluation(model)
    run_evaluation(evaluation.pk)
    evaluation.refresh_from_db()
    return evaluation


@pytest.mark.parametrize("task", sorted(ARCHITECTURES))
def test_an_evaluation_of_each_task_measures_it_per_class_and_keeps_its_pictures(
    user: User, tmp_path: Path, trained_weights: Callable[[str], bytes], task: str
) -> None:
    model = trained_model(user, tmp_path, task, trained_weights(task))

    evaluation = evaluated(model)

    assert evaluation.status == Status.DONE, evaluation.error
    assert (evaluation.task, evaluation.weights_epoch) == (task, 1)
    assert evaluation.started_at is not None
    assert evaluation.finished_at is not None
    assert set(evaluation.metrics) == {metric.key for metric in overall_figures(task)}
    assert all(0.0 <= value <= 1.0 for value in evaluation.metrics.values())

    names = class_names(3)
    expected = validation_counts(tmp_path, task)
    assert [row["name"] for row in evaluation.per_class] == names
    for row in evaluation.per_class:
        for metric in class_figures(task):
            assert metric.key in row
            assert row[metric.key] is None or 0.0 <= row[metric.key] <= 1.0

    counts = evaluation.confusion["counts"]
    per_true_class = [sum(column) for column in zip(*counts, strict=True)]
    if task == "classify":
        assert evaluation.confusion["labels"] == names
        assert per_true_class == expected == [row["images"] for row in evaluation.per_class]
        assert evaluation.curves == {}
    else:
        assert evaluation.confusion["labels"] == [*names, "background"]
        # Each validation instance is counted once, in its true class's column; the
        # background column holds the false detections.
        assert per_true_class[:-1] == expected == [row["instances"] for row in evaluation.per_class]
        assert set(evaluation.curves) == {"pr", "f1", "precision", "recall"}
        for curve in evaluation.curves.values():
            assert len(curve["x"]) == len(curve["all"]) == 101
            assert (curve["x"][0], curve["x"][-1]) == (0.0, 1.0)
            assert set(curve["classes"]) <= set(names)
            assert all(len(values) == 101 for values in curve["classes"].values())

    assert evaluation.pictures, "ultralytics draws at least one validation batch"
    assert len(evaluation.pictures) % 2 == 0  # ground truth, then predictions, per batch
    for key in evaluation.pictures:
        assert key.startswith(f"{model.storage_prefix}/evaluation/batch")
        assert stored(key)[:3] == b"\xff\xd8\xff"  # a JPEG


@pytest.mark.django_db(transaction=True)
def test_a_light_worker_runs_the_evaluation_it_is_sent(
    user: User, tmp_path: Path, trained_weights: Callable[[str], bytes], start_worker: WorkerFactory
) -> None:
    model = trained_model(user, tmp_path, "detect", trained_weights("detect"))
    start_worker("default")

    evaluation = request_evaluation(model)

    wait_for(
        lambda: ModelEvaluation.objects.filter(pk=evaluation.pk, status__in=(Status.DONE, Status.FAILED)).exists(),
        timeout=180,
        interval=0.5,
    )
    evaluation.refresh_from_db()
    assert evaluation.status == Status.DONE, evaluation.error
    assert evaluation.per_class
    assert evaluation.pictures


def test_a_redelivered_message_leaves_a_done_evaluation_alone(
    user: User, tmp_path: Path, trained_weights: Callable[[str], bytes]
) -> None:
    model = trained_model(user, tmp_path, "detect", trained_weights("detect"))
    evaluation = evaluated(model)
    assert evaluation.status == Status.DONE, evaluation.error

    run_evaluation(evaluation.pk)

    again = ModelEvaluation.objects.get(pk=evaluation.pk)
    assert (again.status, again.finished_at) == (Status.DONE, evaluation.finished_at)


def test_weights_missing_from_storage_fail_the_evaluation_saying_so(user: User, tmp_path: Path) -> None:
    model = trained_model(user, tmp_path, "detect", b"placeholder")
    default_storage.delete(model.best_weights.name or "")

    evaluation = evaluated(model)

    assert evaluation.status == Status.FAILED
    assert evaluation.error == "The evaluation failed: the model's weights or dataset are no longer in storage"
    assert evaluation.finished_at is not None
    assert evaluation.pictures == []


def test_weights_that_are_not_a_checkpoint_fail_the_evaluation_with_a_message(user: User, tmp_path: Path) -> None:
    model = trained_model(user, tmp_path, "detect", b"not a checkpoint")

    evaluation = evaluated(model)

    assert evaluation.status == Status.FAILED
    assert evaluation.error == (
        "The evaluation failed: the best weights cannot be read (the file is damaged or not a checkpoint)"
    )
    assert evaluation.metrics == {}


def test_a_dataset_whose_archive_is_gone_fails_the_evaluation_saying_so(
    user: User, tmp_path: Path, trained_weights: Callable[[str], bytes]
) -> None:
    model = trained_model(user, tmp_path, "detect", trained_weights("detect"))
    default_storage.delete(model.dataset.archive.name or "")
    model.dataset.archive.name = default_storage.save(f"{model.dataset.storage_prefix}/archive.zip", ContentFile(b"x"))
    model.dataset.save()

    evaluation = evaluated(model)

    assert evaluation.status == Status.FAILED
    assert evaluation.error.startswith("The evaluation failed: This file is not a zip archive.")
