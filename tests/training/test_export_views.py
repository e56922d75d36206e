"""The Artifacts tab's exports, through the real views: every offered format with what
it is for and its state, a refusal that names the formats, and owner-only downloads."""

from __future__ import annotations

from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from hubsite.models import User
from tests.factories import make_model
from training.datasets import storage_put
from training.exports import export_key
from training.models import Export, YoloModel

PURPOSES = {
    "ONNX": "most runtimes",
    "TorchScript": "C++",
    "OpenVINO": "Intel CPUs, GPUs",
    "NCNN": "phones and ARM boards",
    "CoreML": "Apple devices",
}


def artifacts_tab(client: Client, model: YoloModel) -> str:
    response = client.get(reverse("training:model_detail", args=[model.uid]), {"tab": "artifacts"})
    assert response.status_code == 200
    return " ".join(response.content.decode().split())


def with_best_weights(model: YoloModel) -> YoloModel:
    model.best_weights.name = storage_put(f"{model.storage_prefix}/best.pt", b"weights")
    model.epochs_completed = 3
    model.save()
    return model


def test_the_artifacts_tab_offers_every_format_with_its_purpose_and_state(owner_client: Client, user: User) -> None:
    model = with_best_weights(make_model(user))
    key = storage_put(export_key(model, "ncnn"), b"PK")
    Export.objects.create(model=model, format="ncnn", status=Export.Status.DONE, file=key, weights_epoch=2)
    Export.objects.create(model=model, format="coreml", status=Export.Status.FAILED, error="The export failed: no")

    page = artifacts_tab(owner_client, model)

    for label, purpose in PURPOSES.items():
        assert f"<strong>{label}</strong>: " in page
        assert purpose in page.split(f"<strong>{label}</strong>: ", 1)[1].split("</li>", 1)[0]
    assert page.count("Not exported yet.") == 3
    download = reverse("training:export_download", args=[model.uid, "ncnn"])
    assert f'NCNN of epoch 2: <a href="{download}" download>download</a>' in page
    assert "Export NCNN again" in page
    assert '<span class="status status-failed">failed</span> <span class="failure">The export failed: no</span>' in page
    assert "every 3s" not in page  # nothing in progress: the tab does not poll


def test_an_export_in_progress_is_polled_and_not_offered_twice(owner_client: Client, user: User) -> None:
    model = with_best_weights(make_model(user))

    response = owner_client.post(reverse("training:export", args=[model.uid, "openvino"]))

    assert response.status_code == 302
    page = artifacts_tab(owner_client, model)
    assert "OpenVINO of epoch 3: pending…" in page
    assert "Export OpenVINO" not in page
    assert 'hx-trigger="every 3s"' in page


def test_an_unknown_format_is_refused_naming_the_formats(owner_client: Client, user: User) -> None:
    model = with_best_weights(make_model(user))

    response = owner_client.post(reverse("training:export", args=[model.uid, "tflite"]))

    assert response.status_code == 302
    assert [str(message) for message in get_messages(response.wsgi_request)] == [
        "Choose one of the export formats: ONNX, TorchScript, OpenVINO, NCNN, CoreML."
    ]
    assert not model.exports.exists()


def test_another_users_export_is_not_found(owner_client: Client, outsider_client: Client, user: User) -> None:
    model = with_best_weights(make_model(user))
    key = storage_put(export_key(model, "openvino"), b"PK")
    Export.objects.create(model=model, format="openvino", status=Export.Status.DONE, file=key)
    download = reverse("training:export_download", args=[model.uid, "openvino"])

    assert outsider_client.get(download).status_code == 404
    assert outsider_client.post(reverse("training:export", args=[model.uid, "coreml"])).status_code == 404
    assert owner_client.get(download).status_code == 200
    assert model.exports.count() == 1
