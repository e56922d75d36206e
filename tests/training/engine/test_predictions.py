"""The prediction job on real trained models of every task: it draws the model's
predictions on the picture, lists what it found, times the inference, and frees the
owner's slot; it loads each model's weights once per process; it reads a dataset's
validation picture from the worker's cached copy; and it fails in words.

The models are tiny and trained for three epochs, so their confidences are low: the
jobs run at a confidence of 0.001, where every task finds something."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq.middleware.time_limit import TimeLimitExceeded
from PIL import Image

from hubsite.models import User
from tests.training.predictions.helpers import TASKS, trained, trained_model
from training.datasets.synthetic import class_names
from training.engine.predictions import run_prediction
from training.engine.runner import download
from training.models import YoloModel
from training.predictions import Status, predict_sample, store

pytestmark = [pytest.mark.training, pytest.mark.django_db]

LOW_CONF = 0.001


def run_on_picture(model: YoloModel, picture: bytes, *, conf: float = LOW_CONF) -> store.Job:
    source = store.put_picture(model.owner_id, model.pk, picture)
    job = store.create_job(model.owner_id, model.pk, source, conf=conf, iou=0.7)
    assert job is not None
    run_prediction(job.token)
    finished = store.get_job(job.token)
    assert finished is not None
    return finished


def drawn(job: store.Job) -> Image.Image:
    jpeg = store.result_image(job.token)
    assert jpeg is not None
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


@pytest.mark.parametrize("task", TASKS)
def test_the_job_draws_what_a_model_of_each_task_finds(
    user: User, tmp_path: Path, redis_client: redis.Redis, task: str
) -> None:
    model = trained_model(user, tmp_path, task)

    job = run_on_picture(model, trained(task).picture)

    assert job.status == Status.DONE, job.error
    image = drawn(job)
    assert image.format == "JPEG"
    assert image.size == (job.width, job.height) == (64, 64)
    assert job.inference_ms is not None
    assert job.inference_ms > 0
    found = [detection["class"] for detection in job.detections]
    confidences = [detection["confidence"] for detection in job.detections]
    assert found
    assert set(found) <= set(class_names(3))
    assert confidences == sorted(confidences, reverse=True)
    if task == "classify":
        assert sorted(found) == sorted(class_names(3))  # the top 5 of 3 classes: all of them
        assert sum(confidences) == pytest.approx(1.0, abs=0.01)
    else:
        assert min(confidences) >= LOW_CONF
    # The owner may run the next one.
    assert store.create_job(user.pk, model.pk, "sample:0", conf=0.25, iou=0.7) is not None


def test_a_higher_confidence_draws_fewer_predictions(user: User, tmp_path: Path, redis_client: redis.Redis) -> None:
    model = trained_model(user, tmp_path, "detect")

    low = run_on_picture(model, trained("detect").picture)
    high = run_on_picture(model, trained("detect").picture, conf=0.99)

    assert low.detections
    assert high.detections == []
    assert drawn(low).tobytes() != drawn(high).tobytes()  # the boxes are on the picture


def test_a_large_picture_is_drawn_at_a_bounded_size(user: User, tmp_path: Path, redis_client: redis.Redis) -> None:
    model = trained_model(user, tmp_path, "detect")
    buffer = io.BytesIO()
    Image.open(io.BytesIO(trained("detect").picture)).resize((3000, 2000)).save(buffer, "PNG")

    job = run_on_picture(model, buffer.getvalue())

    assert job.status == Status.DONE, job.error
    assert (job.width, job.height) == (3000, 2000)  # the picture's own size, as the page shows it
    assert drawn(job).size == (1280, 853)


def test_a_worker_loads_a_models_weights_once(
    user: User, tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = trained_model(user, tmp_path, "detect")
    downloads: list[str] = []

    def counted(name: str, target: Path) -> Path:
        downloads.append(name)
        return download(name, target)

    monkeypatch.setattr("training.engine.predictions.download", counted)

    first = run_on_picture(model, trained("detect").picture)
    second = run_on_picture(model, trained("detect").picture, conf=0.5)

    assert (first.status, second.status) == (Status.DONE, Status.DONE)
    assert downloads == [model.best_weights.name]


def test_the_job_reads_a_validation_picture_from_the_workers_copy_of_the_dataset(
    user: User, tmp_path: Path, redis_client: redis.Redis, settings: Any
) -> None:
    settings.DATASET_CACHE_DIR = tmp_path / "cache"
    model = trained_model(user, tmp_path, "detect")
    dataset = model.dataset
    dataset.stats = {"samples": [{"index": 0, "split": "val", "name": "img_00001.jpg", "key": "unused"}]}
    dataset.save()

    job = predict_sample(user, model, 0, conf=LOW_CONF, iou=0.7)
    run_prediction(job.token)

    finished = store.get_job(job.token)
    assert finished is not None
    assert finished.status == Status.DONE, finished.error
    assert finished.detections
    assert (tmp_path / "cache" / str(dataset.uid)).is_dir()


def test_a_picture_that_expired_before_the_job_ran_fails_in_words(
    user: User, tmp_path: Path, redis_client: redis.Redis
) -> None:
    model = trained_model(user, tmp_path, "detect")
    source = store.put_picture(user.pk, model.pk, trained("detect").picture)
    job = store.create_job(user.pk, model.pk, source, conf=0.25, iou=0.7)
    assert job is not None
    redis_client.delete(store._key("picture", user.pk))

    run_prediction(job.token)

    failed = store.get_job(job.token)
    assert failed is not None
    assert (failed.status, failed.error) == (Status.FAILED, "The picture is no longer kept: upload it again.")
    assert store.result_image(job.token) is None
    assert store.create_job(user.pk, model.pk, source, conf=0.25, iou=0.7) is not None  # the slot is free


def test_a_job_runs_once_and_an_expired_one_not_at_all(user: User, tmp_path: Path, redis_client: redis.Redis) -> None:
    model = trained_model(user, tmp_path, "detect")
    job = run_on_picture(model, trained("detect").picture)
    assert store.claim(job.token) is None  # a redelivered message finds it taken

    run_prediction("no-such-token")  # expired while queued: nothing to do, nothing written

    assert not redis_client.exists(store._key("job", "no-such-token"))


def test_a_job_stopped_by_its_time_limit_says_so_and_frees_the_slot(
    user: User, tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = trained_model(user, tmp_path, "detect")
    source = store.put_picture(user.pk, model.pk, trained("detect").picture)
    job = store.create_job(user.pk, model.pk, source, conf=0.25, iou=0.7)
    assert job is not None

    def out_of_time(*args: object, **kwargs: object) -> None:
        raise TimeLimitExceeded  # what Dramatiq's TimeLimit raises in the actor's thread

    monkeypatch.setattr("training.engine.predictions.predict", out_of_time)
    with pytest.raises(TimeLimitExceeded):
        run_prediction(job.token)

    failed = store.get_job(job.token)
    assert failed is not None
    assert failed.status == Status.FAILED
    assert "interrupted" in failed.error
    assert store.create_job(user.pk, model.pk, source, conf=0.25, iou=0.7) is not None
