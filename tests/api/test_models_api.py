"""Models through the API: created by the web's model form and service, inspected with
their epochs and headline metrics, owner-scoped everywhere, bad input a 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import fund, make_model, make_ready_dataset, make_session, record_epoch
from training.models import Dataset, TrainingSession, YoloModel

pytestmark = pytest.mark.django_db


def body(dataset: Dataset, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "api detector",
        "dataset_id": dataset.pk,
        "architecture": "yolo11n",
        "pretrained": False,
        "epochs": 2,
        "imgsz": 64,
        "batch": 8,
        **overrides,
    }


@pytest.fixture
def dataset(user: User, tmp_path: Path) -> Dataset:
    return make_ready_dataset(user, tmp_path)


def test_a_model_created_through_the_api_is_the_web_forms_model(
    api_client: KeyClient, user: User, dataset: Dataset
) -> None:
    response = api_client.post(
        "/api/v1/models", body(dataset, custom_args={"lr0": 0.02, "cos_lr": True}), content_type="application/json"
    )

    assert response.status_code == 201, response.content
    created = response.json()
    model = YoloModel.objects.get(owner=user)
    assert created["id"] == model.pk
    assert (created["name"], created["dataset_id"], created["task"]) == ("api detector", dataset.pk, "detect")
    assert model.train_args["epochs"] == 2
    assert model.train_args["imgsz"] == 64
    assert model.train_args["lr0"] == 0.02
    assert model.train_args["cos_lr"] is True
    assert created["train_args"] == model.train_args
    assert created["best_weights_available"] is False
    assert created["active_session"] is None
    assert created["best_epoch"] is None

    listed = api_client.get("/api/v1/models").json()
    assert listed["count"] == 1
    assert [item["id"] for item in listed["items"]] == [model.pk]
    assert api_client.get(f"/api/v1/models/{model.pk}").json() == created


def test_the_architecture_defaults_to_the_datasets_tasks_default(api_client: KeyClient, dataset: Dataset) -> None:
    response = api_client.post(
        "/api/v1/models", {"name": "defaults", "dataset_id": dataset.pk}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["architecture"].startswith("yolo")
    assert response.json()["train_args"]["epochs"] == 100


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"epochs": "many"}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": 10**30}, "epochs"),
        ({"imgsz": 10**9}, "imgsz"),
        ({"dataset_id": 10**30}, "dataset_id"),
        ({"dataset_id": "first"}, "dataset_id"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"architecture": "yolo11n-cls"}, "architecture"),
        ({"architecture": "no-such-net"}, "architecture"),
        ({"cache": "gpu"}, "cache"),
        ({"custom_args": {"epochs": 5}}, "custom_args"),
        ({"custom_args": {"not_an_argument": 1}}, "custom_args"),
        ({"custom_args": {"lr0\nepochs": 1}}, "custom_args"),
        ({"start_from": "model:not-mine:best"}, "start_from"),
    ],
)
def test_bad_bodies_are_a_422_naming_the_field_and_create_nothing(
    api_client: KeyClient, dataset: Dataset, overrides: dict[str, Any], field: str
) -> None:
    response = api_client.post("/api/v1/models", body(dataset, **overrides), content_type="application/json")

    assert response.status_code == 422, response.content
    payload = response.json()
    assert payload["code"] == "invalid"
    assert f"body.{field}" in [error["field"] for error in payload["errors"]], payload
    assert not YoloModel.objects.exists()


def test_a_dataset_that_is_not_ready_or_not_yours_is_refused_with_the_forms_message(
    api_client: KeyClient, user: User, outsider: User, dataset: Dataset, tmp_path: Path
) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.PROCESSING)
    theirs = make_ready_dataset(outsider, tmp_path / "theirs")
    for chosen in (dataset, theirs):
        response = api_client.post("/api/v1/models", body(chosen), content_type="application/json")
        assert response.status_code == 422
        chosen_message = "Select a valid choice. That choice is not one of the available choices."
        assert response.json()["errors"] == [{"field": "body.dataset_id", "message": chosen_message}]
    assert not YoloModel.objects.exists()


def test_a_read_only_key_cannot_create_a_model(user: User, dataset: Dataset) -> None:
    response = key_client(user, "read").post("/api/v1/models", body(dataset), content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"
    assert not YoloModel.objects.exists()


def test_epochs_and_the_headline_of_the_best_and_last_epoch(api_client: KeyClient, user: User) -> None:
    session = make_session(user)
    for epoch, (map50, map50_95) in enumerate([(0.2, 0.1), (0.6, 0.4), (0.5, 0.3)], start=1):
        record = record_epoch(session, epoch, 1_000 * epoch)
        record.metrics = {"map50": map50, "map50_95": map50_95, "train_box_loss": 1.0 / epoch}
        record.save()
    YoloModel.objects.filter(pk=session.model_id).update(epochs_completed=3)

    epochs = api_client.get(f"/api/v1/models/{session.model_id}/epochs").json()
    assert [(e["epoch"], e["duration_ms"], e["session_id"]) for e in epochs] == [
        (1, 1_000, session.pk),
        (2, 2_000, session.pk),
        (3, 3_000, session.pk),
    ]
    assert epochs[1]["metrics"]["map50_95"] == 0.4

    detail = api_client.get(f"/api/v1/models/{session.model_id}").json()
    assert detail["best_epoch"] == {"epoch": 2, "metrics": {"mAP50": 0.6, "mAP50-95": 0.4}}
    assert detail["last_epoch"] == {"epoch": 3, "metrics": {"mAP50": 0.5, "mAP50-95": 0.3}}
    assert detail["active_session"]["id"] == session.pk
    assert detail["active_session"]["session_epochs"] == 3
    assert detail["epochs_completed"] == 3


def test_instance_types_say_their_price_and_whether_a_worker_is_live(
    api_client: KeyClient, model: YoloModel, cpu_online: None
) -> None:
    offered = {row["slug"]: row for row in api_client.get("/api/v1/instance-types").json()}
    assert offered["cpu"]["online"] is True
    assert offered["cpu"]["price_per_hour"].startswith("US$")
    assert isinstance(offered["cpu"]["price_per_hour_micros"], int)
    assert any(not row["online"] for row in offered.values())  # no worker for the GPU types here


def test_the_cost_report_is_the_billing_tabs_total_and_the_webs_csv(
    api_client: KeyClient, owner_client: Client, user: User
) -> None:
    from billing import services

    fund(user)
    session = make_session(user)
    for epoch in (1, 2):
        record_epoch(session, epoch, 1_500)
        services.hold_epoch(session.pk, epoch, worker_id="test-worker")
        services.capture_epoch(session.pk, epoch, 1_500, worker_id="test-worker")

    report = api_client.get(f"/api/v1/models/{session.model_id}/cost-report")
    assert report.status_code == 200, report.content
    payload = report.json()
    assert payload["total_micros"] == 3_000  # 1.5 s twice at US$3.60/h
    assert payload["total"] == "US$0.00"
    assert [row["session_id"] for row in payload["sessions"]] == [session.pk]
    assert payload["sessions"][0]["cost_micros"] == 3_000
    assert [row["kind"] for row in payload["rows"]] == ["epoch_charge", "epoch_charge"]
    assert sum(float(row["amount_usd"]) for row in payload["rows"]) == pytest.approx(0.003)

    csv = api_client.get(f"/api/v1/models/{session.model_id}/cost-report?format=csv")
    web = owner_client.get(reverse("billing:model_cost_report", args=[session.model_id]))
    assert csv.status_code == web.status_code == 200
    assert csv["Content-Type"] == "text/csv"
    assert b"".join(csv.streaming_content) == b"".join(web.streaming_content)  # type: ignore[attr-defined]


def test_the_cost_report_needs_the_billing_scope(user: User) -> None:
    model = make_model(user)
    response = key_client(user, "read", "train").get(f"/api/v1/models/{model.pk}/cost-report")
    assert response.status_code == 403


def test_a_model_with_no_session_lists_none_and_sessions_filter_by_model(api_client: KeyClient, user: User) -> None:
    first, second = make_session(user), make_session(user, status=TrainingSession.Status.COMPLETED)
    listed = api_client.get(f"/api/v1/sessions?model_id={first.model_id}").json()
    assert [item["id"] for item in listed["items"]] == [first.pk]
    everything = api_client.get("/api/v1/sessions").json()
    assert everything["count"] == 2
    assert {item["id"] for item in everything["items"]} == {first.pk, second.pk}
    assert api_client.get(f"/api/v1/sessions?model_id={10**30}").status_code == 422


def test_the_openapi_schema_lists_every_model_session_and_download_endpoint(api_client: KeyClient) -> None:
    paths = api_client.get("/api/v1/openapi.json").json()["paths"]
    expected = {
        "/api/v1/models": {"get", "post"},
        "/api/v1/models/{model_id}": {"get"},
        "/api/v1/models/{model_id}/epochs": {"get"},
        "/api/v1/models/{model_id}/weights/{kind}": {"get"},
        "/api/v1/models/{model_id}/exports": {"get", "post"},
        "/api/v1/models/{model_id}/exports/{export_format}/download": {"get"},
        "/api/v1/models/{model_id}/cost-report": {"get"},
        "/api/v1/instance-types": {"get"},
        "/api/v1/sessions": {"get", "post"},
        "/api/v1/sessions/{session_id}": {"get"},
        "/api/v1/sessions/{session_id}/stop": {"post"},
        "/api/v1/sessions/{session_id}/resume": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths.get(path, {})), path
