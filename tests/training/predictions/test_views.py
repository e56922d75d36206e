"""The Predict tab through its pages: upload, the worker's answer (run in this process
on a real trained model), the sliders, saving and deleting; bad pictures, the rate
limit, one prediction at a time, CSRF, other users and expiry."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
import time_machine
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image
from pytest_django.fixtures import Settings as SettingsWrapper

from hubsite.models import User
from tests.factories import make_model
from tests.training.datasets.helpers import all_storage_keys
from tests.training.predictions.helpers import trained, trained_model
from tests.training.predictions.test_pictures import BAD, encoded
from training.datasets import storage_put
from training.engine.predictions import run_prediction
from training.models import SavedPrediction, YoloModel
from training.predictions import PREDICT_ACTOR, PREDICT_QUEUE, Status, store

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
TOKEN = re.compile(r"/predict/([A-Za-z0-9_-]{16,})/")


def start_url(model: YoloModel) -> str:
    return reverse("training:predict_start", args=[model.uid])


def url(name: str, model: YoloModel, token: str) -> str:
    return reverse(f"training:{name}", args=[model.uid, token])


def picture_file(data: bytes, name: str = "photo.jpg") -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


def upload(client: Client, model: YoloModel, data: bytes, **fields: Any) -> Any:
    return client.post(start_url(model), {"picture": picture_file(data), **fields}, headers=HTMX)


def token_in(response: Any) -> str:
    match = TOKEN.search(response.content.decode())
    assert match is not None, response.content.decode()
    return match.group(1)


def queued_predictions(redis_client: redis.Redis) -> list[dramatiq.Message[Any]]:
    namespace = dramatiq.get_broker().namespace  # type: ignore[attr-defined]
    raws = redis_client.hvals(f"{namespace}:{PREDICT_QUEUE}.msgs")
    return [dramatiq.Message.decode(raw) for raw in raws if isinstance(raw, bytes)]


def predict_keys(redis_client: redis.Redis) -> list[bytes]:
    return list(redis_client.scan_iter(store._key("*")))


@pytest.fixture
def weighted_model(user: User) -> YoloModel:
    """A model whose best weights exist (never loaded: its predictions are not run)."""
    model = make_model(user)
    model.best_weights.name = storage_put(f"{model.storage_prefix}/best.pt", b"weights")
    model.save()
    return model


def test_the_tab_says_plainly_when_the_model_has_no_weights(owner_client: Client, user: User) -> None:
    model = make_model(user)

    response = owner_client.get(reverse("training:model_detail", args=[model.uid]) + "?tab=predict")

    assert response.status_code == 200
    assert "This model has no weights yet" in response.content.decode()
    assert 'id="predict-form"' not in response.content.decode()
    refused = upload(owner_client, model, encoded())
    assert refused.status_code == 409
    assert "no weights yet" in refused.content.decode()


@pytest.mark.training
def test_a_picture_is_predicted_by_a_job_on_the_predict_queue_shown_moved_and_saved(
    owner_client: Client, user: User, tmp_path: Path, redis_client: redis.Redis, django_capture_on_commit_callbacks: Any
) -> None:
    model = trained_model(user, tmp_path, "detect")
    tab = owner_client.get(reverse("training:model_detail", args=[model.uid]) + "?tab=predict")
    assert 'id="predict-form"' in tab.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(owner_client, model, trained("detect").picture, conf="0.001", iou="0.7")

    assert response.status_code == 200
    token = token_in(response)
    assert 'hx-trigger="every 1s"' in response.content.decode()  # the fragment polls
    [message] = queued_predictions(redis_client)
    assert (message.actor_name, message.queue_name, message.args) == (PREDICT_ACTOR, PREDICT_QUEUE, (token,))
    assert (
        "Waiting for a worker" in owner_client.get(url("predict_result", model, token), headers=HTMX).content.decode()
    )

    run_prediction(token)  # what the worker does with the message

    result = owner_client.get(url("predict_result", model, token), headers=HTMX)
    assert result.status_code == 286  # done: polling stops
    page = result.content.decode()
    assert url("predict_image", model, token) in page
    assert re.search(r"Inference [\d.]+ ms", page)
    job = store.get_job(token)
    assert job is not None
    assert job.detections
    assert job.detections[0]["class"] in page
    image = owner_client.get(url("predict_image", model, token))
    assert image["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).format == "JPEG"

    # A slider moved: the same picture again, with the new threshold.
    with django_capture_on_commit_callbacks(execute=True):
        again = owner_client.post(url("predict_rerun", model, token), {"conf": "0.99", "iou": "0.5"}, headers=HTMX)
    assert again.status_code == 200
    moved = token_in(again)
    assert moved != token
    run_prediction(moved)
    moved_job = store.get_job(moved)
    assert moved_job is not None
    assert (moved_job.status, moved_job.conf, moved_job.iou, moved_job.detections) == (Status.DONE, 0.99, 0.5, [])
    assert (
        "Nothing found at this confidence"
        in owner_client.get(url("predict_result", model, moved), headers=HTMX).content.decode()
    )

    # Saved: the drawn picture and what was found, with the model, under fixed names.
    saved_response = owner_client.post(url("predict_save", model, token), headers=HTMX)
    assert saved_response.status_code == 200
    saved = SavedPrediction.objects.get(model=model)
    assert saved.image.name == f"{model.storage_prefix}/predictions/{saved.pk}.jpg"
    assert default_storage.open(saved.image.name).read() == image.content
    assert saved.detections == job.detections
    assert (saved.conf, saved.source) == (0.001, "uploaded picture")
    assert reverse("training:saved_prediction_image", args=[model.uid, saved.pk]) in saved_response.content.decode()
    shown = owner_client.get(reverse("training:saved_prediction_image", args=[model.uid, saved.pk]))
    assert b"".join(shown.streaming_content) == image.content  # type: ignore[attr-defined]

    with django_capture_on_commit_callbacks(execute=True):
        deleted = owner_client.post(
            reverse("training:saved_prediction_delete", args=[model.uid, saved.pk]), headers=HTMX
        )
    assert deleted.status_code == 200
    assert not SavedPrediction.objects.filter(model=model).exists()
    assert not default_storage.exists(saved.image.name)


def test_without_javascript_the_upload_leads_back_to_the_tab(
    owner_client: Client, weighted_model: YoloModel, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(start_url(weighted_model), {"picture": picture_file(encoded())})

    assert response.status_code == 302
    token = response["Location"].rsplit("prediction=", 1)[1]
    page = owner_client.get(response["Location"]).content.decode()
    assert url("predict_result", weighted_model, token) in page

    refused = owner_client.post(start_url(weighted_model), {"picture": picture_file(b"")}, follow=True)
    assert "The file is empty: choose a picture." in refused.content.decode()


@pytest.mark.parametrize("name", BAD)
def test_a_bad_picture_gets_a_clear_message_and_changes_nothing(
    owner_client: Client, weighted_model: YoloModel, redis_client: redis.Redis, name: str
) -> None:
    data, message = BAD[name]
    before = all_storage_keys()

    response = upload(owner_client, weighted_model, data)

    assert response.status_code == 400
    assert re.search(message, response.content.decode())
    assert predict_keys(redis_client) == []
    assert queued_predictions(redis_client) == []
    assert all_storage_keys() == before


def test_a_picture_over_the_byte_limit_is_refused_before_it_is_read(
    owner_client: Client, weighted_model: YoloModel, redis_client: redis.Redis, settings: SettingsWrapper
) -> None:
    settings.PREDICT_MAX_UPLOAD_BYTES = 500

    response = upload(owner_client, weighted_model, encoded((300, 300), kind="PNG") + b"\0" * 1000)

    assert response.status_code == 413
    assert "larger than the 500 bytes limit" in response.content.decode()
    assert predict_keys(redis_client) == []


def test_no_picture_is_asked_for_in_words(owner_client: Client, weighted_model: YoloModel) -> None:
    response = owner_client.post(start_url(weighted_model), {"conf": "0.5"}, headers=HTMX)
    assert response.status_code == 400
    assert "Choose a picture first." in response.content.decode()
    response = owner_client.post(start_url(weighted_model), {"sample": "3"}, headers=HTMX)
    assert response.status_code == 400
    assert "is not one of this dataset" in response.content.decode()


def test_thresholds_outside_their_range_are_refused(owner_client: Client, weighted_model: YoloModel) -> None:
    response = upload(owner_client, weighted_model, encoded(), conf="7")
    assert response.status_code == 400
    assert "Confidence: Ensure this value is less than or equal to 1.0." in response.content.decode()


def test_a_user_keeps_one_uploaded_picture_at_a_time(
    owner_client: Client, user: User, weighted_model: YoloModel, redis_client: redis.Redis
) -> None:
    first = store.put_picture(user.pk, weighted_model.pk, encoded())
    job = store.create_job(user.pk, weighted_model.pk, first, conf=0.25, iou=0.7)
    assert job is not None
    store.fail(job, "done for this test")
    second = store.put_picture(user.pk, weighted_model.pk, encoded((80, 60)))

    assert store.picture_bytes(user.pk, weighted_model.pk, first) is None
    assert store.picture_bytes(user.pk, weighted_model.pk, second) == encoded((80, 60))
    assert len([key for key in predict_keys(redis_client) if b":picture:" in key]) == 1
    response = owner_client.post(url("predict_rerun", weighted_model, job.token), {"conf": "0.5"}, headers=HTMX)
    assert response.status_code == 409
    assert "The picture is no longer kept: upload it again." in response.content.decode()


def test_one_prediction_per_model_runs_at_a_time(
    owner_client: Client, weighted_model: YoloModel, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(owner_client, weighted_model, encoded())
    second = upload(owner_client, weighted_model, encoded())

    assert first.status_code == 200
    assert second.status_code == 409
    assert "still running: wait for it to finish" in second.content.decode()

    job = store.get_job(token_in(first))
    assert job is not None
    store.fail(job, "done for this test")  # what the worker does when it ends
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(owner_client, weighted_model, encoded()).status_code == 200


def test_predictions_are_rate_limited_per_user(
    owner_client: Client, weighted_model: YoloModel, settings: SettingsWrapper, django_capture_on_commit_callbacks: Any
) -> None:
    settings.RATE_LIMIT_PREDICTIONS_PER_USER = 2
    statuses = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(owner_client, weighted_model, encoded())
        statuses.append(response.status_code)
        job = store.get_job(token_in(response)) if response.status_code == 200 else None
        if job is not None:
            store.fail(job, "done for this test")

    assert statuses == [200, 200, 429]
    assert "Too many predictions in a short time" in response.content.decode()


def test_every_post_needs_the_csrf_token(user: User, weighted_model: YoloModel) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    job = store.create_job(user.pk, weighted_model.pk, "sample:0", conf=0.25, iou=0.7)
    assert job is not None
    saved = SavedPrediction.objects.create(
        model=weighted_model, source="uploaded picture", conf=0.25, iou=0.7, inference_ms=1
    )

    posts = [
        (start_url(weighted_model), {"picture": picture_file(encoded())}),
        (url("predict_rerun", weighted_model, job.token), {"conf": "0.5"}),
        (url("predict_save", weighted_model, job.token), {}),
        (reverse("training:saved_prediction_delete", args=[weighted_model.uid, saved.pk]), {}),
    ]
    for path, data in posts:
        assert client.post(path, data, headers=HTMX).status_code == 403, path
    assert SavedPrediction.objects.filter(pk=saved.pk).exists()


def test_another_user_gets_404_on_every_url(
    outsider_client: Client, user: User, weighted_model: YoloModel, redis_client: redis.Redis
) -> None:
    job = store.create_job(user.pk, weighted_model.pk, "sample:0", conf=0.25, iou=0.7)
    assert job is not None
    store.finish(job, jpeg=encoded(), detections=[], inference_ms=1.0, size=(64, 48))
    saved = SavedPrediction.objects.create(
        model=weighted_model, image="x.jpg", source="uploaded picture", conf=0.25, iou=0.7, inference_ms=1
    )
    token = job.token

    gets = [
        reverse("training:model_detail", args=[weighted_model.uid]) + "?tab=predict",
        url("predict_result", weighted_model, token),
        url("predict_image", weighted_model, token),
        reverse("training:saved_prediction_image", args=[weighted_model.uid, saved.pk]),
    ]
    posts = [
        start_url(weighted_model),
        url("predict_rerun", weighted_model, token),
        url("predict_save", weighted_model, token),
        reverse("training:saved_prediction_delete", args=[weighted_model.uid, saved.pk]),
    ]
    for path in gets:
        assert outsider_client.get(path).status_code == 404, path
    for path in posts:
        assert outsider_client.post(path, {"picture": picture_file(encoded())}, headers=HTMX).status_code == 404, path
    assert SavedPrediction.objects.filter(pk=saved.pk).exists()
    assert store.get_job(token) is not None


def test_a_prediction_no_worker_answered_stops_waiting_and_frees_the_slot(
    owner_client: Client, user: User, weighted_model: YoloModel, redis_client: redis.Redis
) -> None:
    job = store.create_job(user.pk, weighted_model.pk, "sample:0", conf=0.25, iou=0.7)
    assert job is not None
    waiting = owner_client.get(url("predict_result", weighted_model, job.token), headers=HTMX)
    assert waiting.status_code == 200  # still polling

    redis_client.delete(store._key("pending", user.pk, weighted_model.pk))  # its slot expires meanwhile
    with time_machine.travel(time.time() + store.PENDING_SECONDS + 1, tick=False):
        given_up = owner_client.get(url("predict_result", weighted_model, job.token), headers=HTMX)
    assert given_up.status_code == 286
    assert "No worker answered this prediction in time" in given_up.content.decode()
    assert store.create_job(user.pk, weighted_model.pk, "sample:0", conf=0.25, iou=0.7) is not None


def test_a_prediction_is_only_found_through_its_own_model(
    owner_client: Client, user: User, weighted_model: YoloModel
) -> None:
    other = make_model(user)
    job = store.create_job(user.pk, weighted_model.pk, "sample:0", conf=0.25, iou=0.7)
    assert job is not None
    store.finish(job, jpeg=encoded(), detections=[], inference_ms=1.0, size=(64, 48))

    assert owner_client.get(url("predict_image", weighted_model, job.token)).status_code == 200
    assert owner_client.get(url("predict_image", other, job.token)).status_code == 404
    assert owner_client.post(url("predict_save", other, job.token), headers=HTMX).status_code == 404


def test_the_picture_and_the_result_expire_unless_saved(
    owner_client: Client,
    weighted_model: YoloModel,
    redis_client: redis.Redis,
    settings: SettingsWrapper,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.PREDICT_TTL_SECONDS = 1
    with django_capture_on_commit_callbacks(execute=True):
        token = token_in(upload(owner_client, weighted_model, encoded()))
    job = store.get_job(token)
    assert job is not None
    store.finish(
        job, jpeg=encoded(), detections=[{"class": "circle", "confidence": 0.9}], inference_ms=1.0, size=(64, 48)
    )
    assert all(0 < redis_client.ttl(key) <= 1 for key in predict_keys(redis_client))

    time.sleep(1.2)

    assert predict_keys(redis_client) == []
    result = owner_client.get(url("predict_result", weighted_model, token), headers=HTMX)
    assert result.status_code == 286
    assert "This prediction has expired" in result.content.decode()
    assert owner_client.get(url("predict_image", weighted_model, token)).status_code == 404
    assert owner_client.post(url("predict_save", weighted_model, token), headers=HTMX).status_code == 404
    assert not SavedPrediction.objects.exists()
