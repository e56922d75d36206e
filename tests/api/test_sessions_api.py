"""Sessions through the API: Start, Stop and Resume by the web's form and services,
with the web's refusals as JSON, bad bodies a 422 that starts nothing, Start at most
once per Idempotency-Key (two concurrent requests included), and every URL a 404 for
someone else's objects."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from api.models import StartRequestRecord
from billing.models import LedgerLine
from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.billing.helpers import run_at_once
from tests.factories import cpu_instance, fund, make_session
from training import sessions
from training.models import Dataset, TrainingSession, YoloModel

pytestmark = pytest.mark.django_db

Status = TrainingSession.Status


def start_body(model: YoloModel, **overrides: Any) -> dict[str, Any]:
    return {"model_id": model.pk, "mode": "epochs", "epochs": 3, "instance_type": "cpu", **overrides}


def post_json(client: Client, url: str, payload: object, **headers: str) -> Any:
    return client.post(url, payload, content_type="application/json", headers=headers)


def web_start(owner_client: Client, model: YoloModel, **overrides: Any) -> str:
    """The web's Start form with the same choices; its page, with its error, as text."""
    data = {"mode": "epochs", "epochs": 3, "instance_type": cpu_instance().pk, "payment": "balance", **overrides}
    response = owner_client.post(reverse("training:train_start", args=[model.uid]), data)
    assert response.status_code == 400
    return response.content.decode()


def test_start_epochs_from_the_balance_queues_a_session(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    response = post_json(api_client, "/api/v1/sessions", start_body(model))

    assert response.status_code == 201, response.content
    started = response.json()
    session = TrainingSession.objects.get(model=model)
    assert started["id"] == session.pk
    assert (started["status"], started["mode"], started["target_epochs"]) == (Status.QUEUED, "epochs", 3)
    assert started["instance_type"] == "cpu"
    assert started["charged_micros"] == 0
    assert started["charged"] == "US$0.00"
    assert started["estimated_low_micros"] == session.estimated_low_micros is not None
    assert started["queue_position"] == 1
    assert "Idempotent-Replayed" not in response

    assert api_client.get(f"/api/v1/sessions/{session.pk}").json()["id"] == session.pk
    listed = api_client.get(f"/api/v1/sessions?model_id={model.pk}").json()
    assert [item["id"] for item in listed["items"]] == [session.pk]
    assert api_client.get(f"/api/v1/models/{model.pk}").json()["active_session"]["id"] == session.pk


def test_timed_from_the_balance_prepays_the_hours(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    response = post_json(
        api_client, "/api/v1/sessions", start_body(model, mode="timed", epochs=None, time_budget_seconds=5_400)
    )

    assert response.status_code == 201, response.content
    started = response.json()
    assert (started["mode"], started["time_budget_seconds"]) == ("timed", 5_400)
    prepaid = LedgerLine.objects.get(kind=LedgerLine.Kind.TIMED_PREPAYMENT)
    assert started["charged_micros"] == -prepaid.amount_micros == cpu_instance().price_per_hour_micros * 3 // 2


def _no_balance(user: User, model: YoloModel, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("cpu_online")


def _no_worker(user: User, model: YoloModel, request: pytest.FixtureRequest) -> None:
    fund(user)


def _dataset_not_ready(user: User, model: YoloModel, request: pytest.FixtureRequest) -> None:
    fund(user)
    request.getfixturevalue("cpu_online")
    Dataset.objects.filter(pk=model.dataset_id).update(status=Dataset.Status.PROCESSING)


def _another_model_training(user: User, model: YoloModel, request: pytest.FixtureRequest) -> None:
    fund(user)
    request.getfixturevalue("cpu_online")
    make_session(user, instance_type=cpu_instance())  # of another model: the account's one active session


@pytest.mark.parametrize(
    ("situation", "status", "code", "words"),
    [
        (_no_balance, 402, "insufficient_balance", "minimum is US$5.00"),
        (_no_worker, 409, "start_refused", "worker is online right now"),
        (_dataset_not_ready, 409, "start_refused", "dataset is not ready"),
        (_another_model_training, 409, "start_refused", "Another training session is active"),
    ],
)
def test_every_refusal_is_the_webs_message_and_starts_nothing(
    api_client: KeyClient,
    owner_client: Client,
    user: User,
    model: YoloModel,
    request: pytest.FixtureRequest,
    situation: Any,
    status: int,
    code: str,
    words: str,
) -> None:
    situation(user, model, request)
    sessions_before = TrainingSession.objects.count()

    response = post_json(api_client, "/api/v1/sessions", start_body(model), **{"Idempotency-Key": "refused"})

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    message = response.json()["message"]
    assert words in message
    assert escape(message) in web_start(owner_client, model)
    assert TrainingSession.objects.count() == sessions_before
    assert not StartRequestRecord.objects.exists()  # a refused request may be retried with its key


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_id": "mine"},
        {"model_id": 10**30},
        {"epochs": -1},
        {"epochs": 0},
        {"epochs": 10**12},
        {"epochs": "three"},
        {"mode": "forever"},
        {"instance_type": "no-such-type"},
        {"instance_type": 7},
        {"instance_type": "x" * 1000},
        {"mode": "timed", "time_budget_seconds": 10**15},
        {"mode": "timed", "time_budget_seconds": 60},
        {"mode": "timed", "time_budget_seconds": 3_630},
        {"mode": "timed", "time_budget_seconds": -3_600},
        {"mode": "timed"},
        {"resume_after_top_up": "perhaps"},
    ],
)
def test_bad_bodies_are_a_422_and_start_nothing(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None, overrides: dict[str, Any]
) -> None:
    fund(user)
    response = post_json(api_client, "/api/v1/sessions", start_body(model, **overrides))

    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"]
    assert not TrainingSession.objects.exists()
    assert not LedgerLine.objects.exclude(kind=LedgerLine.Kind.TOP_UP).exists()


def test_starting_a_model_that_is_training_is_the_services_refusal(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    """The web shows the running session's panel instead of its Start form here, so the
    message is compared with the service's own."""
    fund(user)
    make_session(user, model=model, instance_type=cpu_instance())
    with pytest.raises(sessions.StartRefused) as refusal:
        sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance(), target_epochs=3))

    response = post_json(api_client, "/api/v1/sessions", start_body(model))

    assert response.status_code == 409
    assert response.json() == {"code": "start_refused", "message": str(refusal.value)}
    assert TrainingSession.objects.count() == 1


def test_a_body_that_is_not_json_is_a_400(api_client: KeyClient, model: YoloModel) -> None:
    response = api_client.post("/api/v1/sessions", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "http_error"
    assert not TrainingSession.objects.exists()


def test_stop_ends_a_queued_session_and_then_has_nothing_to_stop(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    session_id = post_json(api_client, "/api/v1/sessions", start_body(model)).json()["id"]

    stopped = api_client.post(f"/api/v1/sessions/{session_id}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["status"] == Status.STOPPED
    assert stopped.json()["detail"] == "Stopped before it started"

    again = api_client.post(f"/api/v1/sessions/{session_id}/stop")
    assert again.status_code == 409
    assert again.json() == {"code": "not_active", "message": "Nothing is training: there is nothing to stop."}


def test_stop_asks_a_running_sessions_worker(api_client: KeyClient, user: User, model: YoloModel) -> None:
    session = make_session(user, model=model, instance_type=cpu_instance())
    response = api_client.post(f"/api/v1/sessions/{session.pk}/stop")
    assert response.status_code == 200
    assert response.json()["status"] == Status.STOPPING  # its worker (alive by the reaper's rule) ends it


def test_resume_continues_the_stopped_session_as_the_web_does(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    first = make_session(user, model=model, instance_type=cpu_instance(), status=Status.STOPPED)

    refused = post_json(api_client, f"/api/v1/sessions/{first.pk}/resume", {})
    assert refused.status_code == 409
    assert refused.json()["message"] == "There is no checkpoint to resume from yet: start a new training instead."

    YoloModel.objects.filter(pk=model.pk).update(epochs_completed=1, last_checkpoint=f"{model.storage_prefix}/x.pt")
    resumed = post_json(api_client, f"/api/v1/sessions/{first.pk}/resume", {"epochs": 3})
    assert resumed.status_code == 201, resumed.content
    assert (resumed.json()["resumed_from_id"], resumed.json()["start_epoch"]) == (first.pk, 1)
    assert resumed.json()["instance_type"] == "cpu"  # the stopped session's when not given

    api_client.post(f"/api/v1/sessions/{resumed.json()['id']}/stop")
    older = post_json(api_client, f"/api/v1/sessions/{first.pk}/resume", {})
    assert older.status_code == 409
    assert older.json()["message"] == "Only the model's latest session can be resumed."

    # Start on a model whose last session stopped resumes it, like the web's Start button.
    restarted = post_json(api_client, "/api/v1/sessions", start_body(model))
    assert restarted.status_code == 201, restarted.content
    assert restarted.json()["resumed_from_id"] == resumed.json()["id"]


def test_a_read_only_key_cannot_start_stop_or_resume(user: User, model: YoloModel, cpu_online: None) -> None:
    fund(user)
    session = make_session(user, model=model, instance_type=cpu_instance())
    reader = key_client(user, "read")
    for url, payload in [
        ("/api/v1/sessions", start_body(model)),
        (f"/api/v1/sessions/{session.pk}/stop", {}),
        (f"/api/v1/sessions/{session.pk}/resume", {}),
    ]:
        response = post_json(reader, url, payload)
        assert response.status_code == 403, url
        assert response.json()["code"] == "scope_missing"
    session.refresh_from_db()
    assert session.status == Status.TRAINING
    assert TrainingSession.objects.count() == 1


# --- idempotency -----------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_same_session_and_starts_nothing(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    first = post_json(api_client, "/api/v1/sessions", start_body(model), **{"Idempotency-Key": "ci-run-41"})
    retry = post_json(api_client, "/api/v1/sessions", start_body(model), **{"Idempotency-Key": "ci-run-41"})

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert TrainingSession.objects.count() == 1

    changed = post_json(api_client, "/api/v1/sessions", start_body(model, epochs=4), **{"Idempotency-Key": "ci-run-41"})
    assert changed.status_code == 422
    assert changed.json()["code"] == "idempotency_key_reused"
    assert TrainingSession.objects.count() == 1


def test_an_idempotency_key_is_the_owners_alone(
    api_client: KeyClient, user: User, outsider: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    post_json(api_client, "/api/v1/sessions", start_body(model), **{"Idempotency-Key": "shared"})
    theirs = post_json(key_client(outsider), "/api/v1/sessions", start_body(model), **{"Idempotency-Key": "shared"})
    assert theirs.status_code == 404  # not a replay of the owner's session


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_an_idempotency_key_of_a_bad_length_is_a_422(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None, key: str
) -> None:
    fund(user)
    response = post_json(api_client, "/api/v1/sessions", start_body(model), **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not TrainingSession.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_one_key_start_one_session(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    responses: list[Any] = []

    def send() -> None:
        responses.append(post_json(api_client, "/api/v1/sessions", start_body(model), **{"Idempotency-Key": "once"}))

    assert run_at_once([partial(send), partial(send)]) == []
    connection.close()

    assert sorted(response.status_code for response in responses) == [200, 201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert TrainingSession.objects.count() == 1
    assert StartRequestRecord.objects.count() == 1


# --- someone else's objects ------------------------------------------------------------

URLS = [
    ("get", "/api/v1/models/{model}"),
    ("get", "/api/v1/models/{model}/epochs"),
    ("get", "/api/v1/models/{model}/weights/best"),
    ("get", "/api/v1/models/{model}/weights/last"),
    ("get", "/api/v1/models/{model}/exports"),
    ("post", "/api/v1/models/{model}/exports"),
    ("get", "/api/v1/models/{model}/exports/onnx/download"),
    ("get", "/api/v1/models/{model}/cost-report"),
    ("get", "/api/v1/models/{model}/cost-report?format=csv"),
    ("get", "/api/v1/sessions/{session}"),
    ("post", "/api/v1/sessions/{session}/stop"),
    ("post", "/api/v1/sessions/{session}/resume"),
    ("post", "/api/v1/sessions"),
]


@pytest.mark.parametrize(("method", "url"), URLS)
def test_someone_elses_objects_are_a_404_like_missing_ones(
    outsider_api_client: KeyClient, api_client: KeyClient, user: User, model: YoloModel, method: str, url: str
) -> None:
    session = make_session(user, model=model, instance_type=cpu_instance(), status=Status.STOPPED)
    payload = {**start_body(model), "format": "onnx"}

    def call(client: KeyClient, model_id: int, session_id: int) -> Any:
        target = url.format(model=model_id, session=session_id)
        if method == "get":
            return client.get(target)
        return post_json(client, target, {**payload, "model_id": model_id})

    theirs = call(outsider_api_client, model.pk, session.pk)
    missing = call(api_client, 10**9, 10**9)
    huge = call(api_client, 10**25, 10**25)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"code": "not_found", "message": "No such object, or it is not yours."}
    assert huge.status_code in (404, 422)  # never a database error
    assert TrainingSession.objects.count() == 1
