"""A whole training cycle driven by the API alone, as a CI script would: upload a
dataset zip, wait for validation, create a model, start with an idempotency key, poll
to the end, download the weights, export and download, read the cost report and the
balance. Real worker, real training."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import ensure_instance_types, fund
from training.datasets.synthetic import write_synthetic_dataset
from training.exports import export_key
from training.models import YoloModel

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def poll(client: KeyClient, url: str, done: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        payload = client.get(url).json()
        if done(payload):
            return payload
        time.sleep(0.5)
    raise AssertionError(f"{url} not done within {timeout} s: {payload}")


def test_a_whole_training_cycle_through_the_api_alone(user: User, tmp_path: Path, cpu_worker: object) -> None:
    ensure_instance_types()
    fund(user)
    client = key_client(user)
    balance_before = client.get("/api/v1/billing/balance").json()["balance_micros"]
    archive = write_synthetic_dataset(tmp_path / "shapes.zip", train_images=16, val_images=8, image_size=64)

    with archive.open("rb") as handle:
        uploaded = client.post("/api/v1/datasets", {"name": "api shapes", "file": handle})
    assert uploaded.status_code == 201, uploaded.content
    dataset_url = f"/api/v1/datasets/{uploaded.json()['id']}"
    dataset = poll(client, dataset_url, lambda d: d["status"] in ("ready", "invalid"), timeout=120)
    assert dataset["status"] == "ready", dataset["problems"]

    created = client.post(
        "/api/v1/models",
        {
            "name": "api shapes",
            "dataset_id": dataset["id"],
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
    start = {"model_id": model_id, "mode": "epochs", "epochs": 2, "instance_type": "cpu"}
    started = client.post("/api/v1/sessions", start, "application/json", headers={"Idempotency-Key": "cycle-1"})
    assert started.status_code == 201, started.content
    retried = client.post("/api/v1/sessions", start, "application/json", headers={"Idempotency-Key": "cycle-1"})
    assert (retried.status_code, retried.json()["id"]) == (200, started.json()["id"])
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
    balance = client.get("/api/v1/billing/balance").json()
    assert balance["balance_micros"] == balance_before - report["total_micros"]
    assert balance["held_micros"] == 0
