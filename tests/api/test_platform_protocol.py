"""The server side of ultralytics' platform callbacks, driven with the Django test
client as the client sends it (ultralytics_platform: JSON bodies, Bearer key)."""

from __future__ import annotations

import io
import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from django.core import signing
from django.core.files.storage import default_storage
from django.test import Client

from api.keys import create_key, revoke_key
from billing.invariants import find_violations
from billing.models import LedgerLine
from hubsite.models import User
from tests.factories import make_ready_dataset
from tests.training.weights.helpers import write_yolo_checkpoint
from training.datasets.synthetic import class_names
from training.datasets.uri import dataset_uri
from training.models import Dataset, EpochRecord, ModelEvaluation, RemoteUpload, TrainingSession, YoloModel
from training.remote import uploads
from training.sessions import request_stop

pytestmark = pytest.mark.django_db

METRICS_URL = "/api/webhooks/training/metrics"
UPLOAD_URL = "/api/webhooks/models/upload"


class Remote:
    """What ultralytics' callbacks send, with one key."""

    def __init__(self, key: str) -> None:
        self.client = Client(headers={"Authorization": f"Bearer {key}"})

    def post(self, url: str, body: Any) -> Any:
        content = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(url, content, content_type="application/json")

    def event(self, event: str, data: dict[str, Any], model_id: str | None = None, **identity: str) -> Any:
        return self.post(METRICS_URL, {"event": event, "data": data, "modelId": model_id, **identity})

    def start(self, data_arg: str = "/home/me/shapes/data.yaml", epochs: int = 3) -> dict[str, Any]:
        response = self.event(
            "training_started",
            {
                "trainArgs": {"model": "yolo11n.yaml", "data": data_arg, "task": "detect", "imgsz": "64"},
                "epochs": epochs,
                "device": "cpu",
                "environment": {"hostname": "laptop", "ultralyticsVersion": "8.4.190"},
            },
            project="remote-test",
            name="exp",
        )
        assert response.status_code == 200, response.content
        return dict(response.json())


def epoch(number: int) -> dict[str, Any]:
    return {
        "epoch": number,
        "metrics": {"train/box_loss": 1.5 - number / 10, "metrics/mAP50(B)": 0.1 * number, "lr": 0.01},
        "fitness": 0.1,
    }


@pytest.fixture
def remote(user: User) -> Remote:
    return Remote(create_key(user, "laptop", ["train"])[1])


def ledger_count(user: User) -> int:
    return LedgerLine.objects.filter(account__user=user).count()


def test_a_run_starts_a_free_remote_session_on_a_new_model(remote: Remote, user: User) -> None:
    before = ledger_count(user)
    reply = remote.start()
    session = TrainingSession.objects.get(pk=reply["runId"])
    assert reply["cancelled"] is False
    assert reply["modelId"] == str(session.model.uid)
    assert reply["modelUrl"].startswith("http")
    assert str(session.model.uid) in reply["modelUrl"]
    assert session.remote
    assert session.status == "training"
    assert session.price_per_hour_micros == 0
    assert session.instance_type.slug == "your-hardware"
    assert not session.instance_type.active
    assert session.remote_environment["hostname"] == "laptop"
    assert session.model.name == "remote-test/exp"
    assert session.model.architecture == "yolo11n"
    assert session.model.dataset.status == Dataset.Status.ON_MACHINE
    assert remote.start()["modelId"] != reply["modelId"]
    assert YoloModel.objects.filter(owner=user, name="remote-test/exp-2").exists()
    assert ledger_count(user) == before


def test_ul_datasets_resolve_to_the_owners_own(remote: Remote, user: User, outsider: User, tmp_path: Any) -> None:
    mine = make_ready_dataset(user, tmp_path)
    reply = remote.start(dataset_uri(mine))
    assert YoloModel.objects.get(uid=reply["modelId"]).dataset == mine
    theirs = make_ready_dataset(outsider, tmp_path / "o")
    response = remote.event("training_started", {"trainArgs": {"data": dataset_uri(theirs)}, "epochs": 3})
    assert response.status_code == 404
    assert "error" in response.json()


def test_epochs_are_recorded_once_in_any_order_even_after_complete(remote: Remote) -> None:
    reply = remote.start()
    model_id = reply["modelId"]
    for number in (0, 1, 1, 0):
        assert remote.event("epoch_end", epoch(number), model_id).json() == {"cancelled": False}
    complete = remote.event("training_complete", {"results": {"bestEpoch": 1}, "runId": reply["runId"]}, model_id)
    assert complete.status_code == 200
    late = remote.event("epoch_end", epoch(2), model_id)
    assert late.json() == {"cancelled": True}
    model = YoloModel.objects.get(uid=model_id)
    assert list(model.epochs.values_list("epoch", flat=True)) == [1, 2, 3]
    assert [row[0] for row in model.epoch_series] == [1, 2, 3]
    record = EpochRecord.objects.get(model=model, epoch=2)
    assert record.metrics["map50"] == pytest.approx(0.1)
    assert record.metrics["train_box_loss"] == pytest.approx(1.4)
    assert record.metrics["lr"] == pytest.approx(0.01)
    assert model.epochs_completed == 3
    assert find_violations() == []
    session = TrainingSession.objects.get(pk=reply["runId"])
    assert session.status == "completed"
    assert "best epoch 2" in session.status_detail


def test_console_is_ordered_and_a_resent_chunk_ignored(remote: Remote) -> None:
    reply = remote.start()
    for chunk_id, content in ((1, "second"), (0, "first"), (1, "second")):
        data = {"chunkId": chunk_id, "content": content, "lineCount": 1, "progress": False}
        assert remote.event("console_output", data, reply["modelId"]).status_code == 200
    assert TrainingSession.objects.get(pk=reply["runId"]).log_tail == "first\nsecond"


def test_stop_moves_to_stopping_then_cancels_then_ends_stopped(remote: Remote) -> None:
    reply = remote.start()
    session = TrainingSession.objects.get(pk=reply["runId"])
    assert request_stop(session) == "stopping"
    assert remote.event("epoch_end", epoch(0), reply["modelId"]).json() == {"cancelled": True}
    remote.event("training_complete", {"results": {}, "runId": reply["runId"]}, reply["modelId"])
    session.refresh_from_db()
    assert session.status == "stopped"


def test_failed_run_ends_failed_with_its_reason(remote: Remote) -> None:
    reply = remote.start()
    remote.event("training_failed", {"error": "CUDA out of memory"}, reply["modelId"])
    session = TrainingSession.objects.get(pk=reply["runId"])
    assert session.status == "failed"
    assert session.failure_reason == "CUDA out of memory"
    assert remote.event("system_metrics", {"cpu": 3}, reply["modelId"]).json() == {"cancelled": True}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        {"event": "nonsense", "data": {}},
        {"event": "epoch_end", "data": "x", "modelId": "a"},
        {"event": "training_started", "data": {"trainArgs": "x", "epochs": 3}},
        {"event": "training_started", "data": {"trainArgs": {}, "epochs": "3"}},
    ],
)
def test_bad_bodies_are_400_json_and_change_nothing(remote: Remote, body: Any) -> None:
    response = remote.post(METRICS_URL, body)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "code", "message"}
    assert not TrainingSession.objects.exists()
    assert not YoloModel.objects.exists()


def test_bad_fields_of_events_are_400(remote: Remote) -> None:
    reply = remote.start()
    for event, data in (("epoch_end", {"epoch": "1", "metrics": {}}), ("console_output", {"chunkId": -1})):
        assert remote.event(event, data, reply["modelId"]).status_code == 400
    assert not EpochRecord.objects.exists()


def test_another_users_model_is_404(remote: Remote, outsider: User) -> None:
    theirs = Remote(create_key(outsider, "x", ["train"])[1]).start()
    response = remote.event("epoch_end", epoch(0), theirs["modelId"])
    assert response.status_code == 404
    resumed = remote.event("training_started", {"trainArgs": {}, "epochs": 3}, theirs["modelId"])
    assert resumed.status_code == 404
    assert not EpochRecord.objects.exists()


def test_keys_absent_revoked_or_read_only(user: User) -> None:
    assert Client().post(METRICS_URL, "{}", content_type="application/json").status_code == 401
    api_key, key = create_key(user, "old", ["train"])
    revoke_key(api_key)
    assert Remote(key).post(METRICS_URL, {"event": "training_progress", "data": {}}).status_code == 401
    read_only = Remote(create_key(user, "ro", ["read"])[1]).post(METRICS_URL, {"event": "epoch_end", "data": {}})
    assert read_only.status_code == 403
    assert read_only.json()["code"] == "scope_missing"


def upload_url(remote: Remote, reply: dict[str, Any]) -> dict[str, Any]:
    response = remote.post(UPLOAD_URL, {"filename": "../best.pt", "modelId": reply["modelId"], "runId": reply["runId"]})
    assert response.status_code == 200, response.content
    return dict(response.json())


def put(url: str, data: bytes) -> Any:
    return Client().put(url, data, content_type="application/octet-stream")


def test_upload_url_is_signed_bound_and_capped(remote: Remote, settings: Any) -> None:
    reply = remote.start()
    staged = upload_url(remote, reply)
    upload = RemoteUpload.objects.get(uid=staged["gcsPath"])
    assert upload.file_name == "best.pt"
    assert put(staged["uploadUrl"] + "x", b"data").status_code == 403
    settings.WEIGHTS_MAX_UPLOAD_BYTES = 3
    too_big = put(staged["uploadUrl"], b"four")
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "too_large"
    settings.WEIGHTS_MAX_UPLOAD_BYTES = 1024
    assert put(staged["uploadUrl"], b"four").status_code == 200
    upload.refresh_from_db()
    assert upload.status == "received"
    assert upload.size == 4
    stored_name = upload.upload.name or ""
    assert str(upload.uid) in stored_name
    assert "best.pt" not in stored_name
    other = remote.start()
    forged = signing.TimestampSigner(salt=uploads.SALT).sign(f"{upload.uid}.{other['runId']}")
    assert put(f"/api/webhooks/models/upload/{forged}", b"four").status_code == 404
    expired = _SignedLongAgo(salt=uploads.SALT).sign(f"{upload.uid}.{reply['runId']}")
    response = put(f"/api/webhooks/models/upload/{expired}", b"four")
    assert response.status_code == 403
    assert response.json()["code"] == "url_expired"


class _SignedLongAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 10 * 3600)


class Hostile:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pwned",))


def test_a_hostile_pickle_is_refused_and_never_becomes_weights(remote: Remote, user: User) -> None:
    before = ledger_count(user)
    reply = remote.start()
    staged = upload_url(remote, reply)
    assert put(staged["uploadUrl"], pickle.dumps(Hostile())).status_code == 200
    saved = remote.event(
        "checkpoint_saved", {"runId": reply["runId"], "modelPath": staged["gcsPath"]}, reply["modelId"]
    )
    assert saved.status_code == 200
    upload = RemoteUpload.objects.get(uid=staged["gcsPath"])
    assert upload.status == "checking"
    assert uploads.run_remote_check(upload.pk) == "refused"
    upload.refresh_from_db()
    model = YoloModel.objects.get(uid=reply["modelId"])
    assert upload.error
    assert not model.best_weights
    assert not default_storage.exists(f"{model.storage_prefix}/remote/{upload.uid}/upload.pt")
    assert ledger_count(user) == before


def test_checkpoint_saved_of_another_run_promotes_nothing(remote: Remote) -> None:
    first, second = remote.start(), remote.start()
    staged = upload_url(remote, first)
    put(staged["uploadUrl"], io.BytesIO(b"x").getvalue())
    remote.event("checkpoint_saved", {"runId": second["runId"], "modelPath": staged["gcsPath"]}, second["modelId"])
    assert RemoteUpload.objects.get(uid=staged["gcsPath"]).status == "received"


@pytest.mark.parametrize("on_our_dataset", [True, False])
def test_checked_weights_become_the_best_and_are_evaluated_where_the_dataset_is_here(
    remote: Remote, user: User, tmp_path: Path, on_our_dataset: bool
) -> None:
    data_arg = dataset_uri(make_ready_dataset(user, tmp_path)) if on_our_dataset else "/home/me/shapes/data.yaml"
    reply = remote.start(data_arg)
    staged = upload_url(remote, reply)
    checkpoint = write_yolo_checkpoint(tmp_path / "best.pt", names=class_names(3))
    assert put(staged["uploadUrl"], checkpoint.read_bytes()).status_code == 200
    remote.event(
        "training_complete", {"runId": reply["runId"], "results": {"modelPath": staged["gcsPath"]}}, reply["modelId"]
    )
    upload = RemoteUpload.objects.get(uid=staged["gcsPath"])

    assert uploads.run_remote_check(upload.pk) == "promoted"

    model = YoloModel.objects.get(uid=reply["modelId"])
    upload.refresh_from_db()
    assert model.best_weights.name == upload.weights.name
    assert default_storage.open(model.best_weights.name or "").read() != checkpoint.read_bytes()  # rebuilt by our code
    assert not default_storage.exists(f"{model.storage_prefix}/remote/{upload.uid}/upload.pt")
    assert ModelEvaluation.objects.filter(model=model, status="pending").exists() is on_our_dataset
