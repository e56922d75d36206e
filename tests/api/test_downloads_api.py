"""Weights and exports through the API: the web's files and checks; and a whole
training cycle driven by the API alone (create, start, poll, download, export, cost)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import ensure_instance_types, fund, make_model, make_ready_dataset
from tests.helpers import WorkerFactory, wait_for
from training.datasets.storage import storage_put
from training.exports import export_key
from training.models import Export, YoloModel
from training.presence import live_queues

pytestmark = pytest.mark.django_db


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def with_best_weights(model: YoloModel, data: bytes = b"weights of epoch 3") -> YoloModel:
    model.best_weights.name = storage_put(f"{model.storage_prefix}/checkpoints/epoch-0003.pt", data)
    model.save(update_fields=["best_weights"])
    return model


def test_weights_are_a_404_until_there_are_some_then_the_stored_file(api_client: KeyClient, user: User) -> None:
    model = make_model(user)
    for kind in ("best", "last"):
        missing = api_client.get(f"/api/v1/models/{model.pk}/weights/{kind}")
        assert missing.status_code == 404
        assert missing.json() == {"code": "no_weights_yet", "message": "These weights do not exist yet."}

    with_best_weights(model)
    model.last_checkpoint.name = storage_put(f"{model.storage_prefix}/checkpoints/last.pt", b"last checkpoint")
    model.save(update_fields=["last_checkpoint"])

    best = api_client.get(f"/api/v1/models/{model.pk}/weights/best")
    assert best.status_code == 200
    assert body_of(best) == b"weights of epoch 3"
    assert best["Content-Disposition"] == 'attachment; filename="detector-best.pt"'
    assert body_of(api_client.get(f"/api/v1/models/{model.pk}/weights/last")) == b"last checkpoint"
    assert api_client.get(f"/api/v1/models/{model.pk}").json()["best_weights_available"] is True
    assert api_client.get(f"/api/v1/models/{model.pk}/weights/other").status_code == 404


def test_weights_gone_from_storage_are_a_404_not_an_error(api_client: KeyClient, user: User) -> None:
    model = with_best_weights(make_model(user))
    default_storage.delete(model.best_weights.name or "")
    response = api_client.get(f"/api/v1/models/{model.pk}/weights/best")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_exports_are_refused_as_the_web_refuses_them(api_client: KeyClient, user: User) -> None:
    model = make_model(user)
    no_weights = api_client.post(f"/api/v1/models/{model.pk}/exports", {"format": "onnx"}, "application/json")
    assert no_weights.status_code == 409
    assert no_weights.json() == {
        "code": "export_refused",
        "message": "There are no weights to export yet: the first epoch must complete first.",
    }

    with_best_weights(model)
    unknown = api_client.post(f"/api/v1/models/{model.pk}/exports", {"format": "tflite"}, "application/json")
    assert unknown.status_code == 409
    assert unknown.json()["message"].startswith("Choose one of the export formats")
    wrong_type = api_client.post(f"/api/v1/models/{model.pk}/exports", {"format": ["onnx"]}, "application/json")
    assert wrong_type.status_code == 422
    assert not Export.objects.exists()

    reader = key_client(user, "read").post(f"/api/v1/models/{model.pk}/exports", {"format": "onnx"}, "application/json")
    assert reader.status_code == 403
    assert not Export.objects.exists()


def test_an_export_is_queued_listed_and_downloadable_once_done(api_client: KeyClient, user: User) -> None:
    model = with_best_weights(make_model(user))
    listed = api_client.get(f"/api/v1/models/{model.pk}/exports").json()
    assert [row["format"] for row in listed] == ["onnx", "torchscript", "openvino", "ncnn", "coreml"]
    assert all(row["status"] is None and not row["downloadable"] for row in listed)

    queued = api_client.post(f"/api/v1/models/{model.pk}/exports", {"format": "onnx"}, "application/json")
    assert queued.status_code == 202
    assert queued.json()["status"] == Export.Status.PENDING
    early = api_client.get(f"/api/v1/models/{model.pk}/exports/onnx/download")
    assert early.status_code == 404
    assert early.json()["code"] == "no_export_yet"

    key = storage_put(export_key(model, "onnx"), b"an onnx graph")
    Export.objects.filter(model=model, format="onnx").update(status=Export.Status.DONE, file=key)
    row = next(row for row in api_client.get(f"/api/v1/models/{model.pk}/exports").json() if row["format"] == "onnx")
    assert row["downloadable"] is True
    done = api_client.get(f"/api/v1/models/{model.pk}/exports/onnx/download")
    assert done.status_code == 200
    assert body_of(done) == b"an onnx graph"
    assert done["Content-Disposition"] == 'attachment; filename="detector-best.onnx"'


# --- the whole cycle, for real ---------------------------------------------------------


@pytest.fixture
def cpu_worker(start_worker: WorkerFactory, fast_workers: dict[str, str]) -> object:
    process = start_worker("default", "train.cpu", extra_env=fast_workers)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)
    return process


@pytest.fixture
def fast_workers(settings: Any) -> dict[str, str]:
    from tests.helpers import FAST_WORKER_ENV

    settings.TRAINING_HEARTBEAT_INTERVAL_SECONDS = 1
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 5
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 1
    return dict(FAST_WORKER_ENV)


def poll(client: KeyClient, url: str, done: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        payload = client.get(url).json()
        if done(payload):
            return payload
        time.sleep(0.5)
    raise AssertionError(f"{url} not done within {timeout} s: {payload}")


@pytest.mark.training
@pytest.mark.django_db(transaction=True)
def test_a_whole_training_cycle_through_the_api_alone(user: User, tmp_path: Path, cpu_worker: object) -> None:
    ensure_instance_types()
    fund(user)
    dataset = make_ready_dataset(user, tmp_path)
    client = key_client(user)

    created = client.post(
        "/api/v1/models",
        {
            "name": "api shapes",
            "dataset_id": dataset.pk,
            "architecture": "yolo11n",
            "pretrained": False,
            "epochs": 2,
            "imgsz": 64,
            "batch": 8,
            "custom_args": {"nbs": 8, "seed": 0},
        },
        "application/json",
    )
    assert created.status_code == 201, created.content
    model_id = created.json()["id"]
    started = client.post(
        "/api/v1/sessions",
        {"model_id": model_id, "mode": "epochs", "epochs": 2, "instance_type": "cpu"},
        "application/json",
        headers={"Idempotency-Key": "cycle-1"},
    )
    assert started.status_code == 201, started.content
    session_url = f"/api/v1/sessions/{started.json()['id']}"

    finished = poll(client, session_url, lambda s: s["status"] in ("completed", "failed"))

    assert finished["status"] == "completed", finished["failure_reason"]
    assert (finished["session_epochs"], finished["epochs_completed"], finished["percent"]) == (2, 2, 100)
    assert "epoch 2/2 completed" in finished["log_tail"]
    assert set(finished["headline_metrics"]) == {"mAP50", "mAP50-95"}
    epochs = client.get(f"/api/v1/models/{model_id}/epochs").json()
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]
    assert all(epoch["duration_ms"] > 0 and "map50_95" in epoch["metrics"] for epoch in epochs)

    model = YoloModel.objects.get(pk=model_id)
    best = client.get(f"/api/v1/models/{model_id}/weights/best")
    assert best.status_code == 200
    with default_storage.open(model.best_weights.name or "", "rb") as stored:
        assert body_of(best) == stored.read()

    asked = client.post(f"/api/v1/models/{model_id}/exports", {"format": "torchscript"}, "application/json")
    assert asked.status_code == 202, asked.content
    poll(
        client,
        f"/api/v1/models/{model_id}/exports",
        lambda rows: any(r["format"] == "torchscript" and r["status"] in ("done", "failed") for r in rows),
    )
    exported = client.get(f"/api/v1/models/{model_id}/exports/torchscript/download")
    assert exported.status_code == 200, exported.content
    data = body_of(exported)
    assert data[:2] == b"PK"  # a TorchScript archive
    with default_storage.open(export_key(model, "torchscript"), "rb") as stored:
        assert data == stored.read()

    report = client.get(f"/api/v1/models/{model_id}/cost-report").json()
    assert report["total_micros"] == finished["charged_micros"] > 0
    assert [row["kind"] for row in report["rows"]] == ["epoch_charge", "epoch_charge"]
    csv = body_of(client.get(f"/api/v1/models/{model_id}/cost-report?format=csv")).decode()
    assert csv.splitlines()[0].startswith("timestamp_utc,session,epoch")
    assert len(csv.splitlines()) == 3
