"""Weights and exports through the API: the web's files and checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import make_model
from training.datasets.storage import storage_put
from training.exports import export_key
from training.models import Export, YoloModel

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
