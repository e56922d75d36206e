from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from hubsite.models import User
from tests.factories import cpu_instance, make_validated_dataset
from training.datasets import storage_put
from training.models import Dataset, EpochRecord, TrainingSession, YoloModel

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def dataset(user: User, tmp_path: Path) -> Dataset:
    return make_validated_dataset(user, tmp_path)


@pytest.fixture
def model(user: User, dataset: Dataset) -> YoloModel:
    return YoloModel.objects.create(
        owner=user,
        name="detector",
        dataset=dataset,
        architecture="yolo11n",
        train_args={"epochs": 3, "imgsz": 64, "batch": 8, "patience": 100, "cache": False, "lr0": 0.02},
    )


def form_data(dataset: Dataset, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "my detector",
        "dataset": dataset.pk,
        "architecture": "yolo11n",
        "epochs": 30,
        "imgsz": 128,
        "batch": -1,
        "patience": 100,
        "cache": "none",
        "custom_args": "",
    }
    data.update(overrides)
    return data


# --- create ------------------------------------------------------------------------------------


def test_the_form_lists_architectures_with_params_and_gflops(owner_client: Client, dataset: Dataset) -> None:
    call_command("measure_catalogue", "--task", "detect", stdout=io.StringIO())  # as the demo setup does, for all
    body = owner_client.get(f"/models/new/?dataset={dataset.uid}").content.decode()
    for name in ("YOLO11n", "YOLO11x", "YOLO26n", "YOLO26x", "YOLOv8n", "YOLOv8x"):
        assert name in body
    assert "2.6M params" in body
    assert "GFLOPs" in body
    assert f'<option value="{dataset.pk}" selected>' in body


def test_it_creates_a_model_with_checked_arguments(owner_client: Client, user: User, dataset: Dataset) -> None:
    data = form_data(dataset, cache="ram", custom_args="lr0=0.02\ncos_lr=true\nnbs: 8\nfreeze=[0, 1]")
    response = owner_client.post("/models/new/", data)
    model = YoloModel.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/models/{model.uid}/train/"  # step 3 of the wizard
    assert model.owner == user
    assert model.dataset == dataset
    assert model.architecture == "yolo11n"
    assert model.pretrained is False
    assert model.train_args == {
        "epochs": 30,
        "imgsz": 128,
        "batch": -1,
        "patience": 100,
        "cache": "ram",
        "lr0": 0.02,
        "cos_lr": True,
        "nbs": 8,
        "freeze": [0, 1],
    }


@pytest.mark.parametrize(
    ("custom_args", "message"),
    [
        ("device=cpu", "device: is set by the platform and cannot be changed."),
        ("project=/tmp/x", "project: is set by the platform"),
        ("resume=true", "resume: is set by the platform"),
        ("no_such_arg=1", "no_such_arg: is not an ultralytics argument."),
        ("show=true", "show: is not a training argument"),
        ("lr0=fast", "lr0: &#x27;lr0=fast&#x27; is of invalid type str"),
        ("cos_lr=maybe", "cos_lr: &#x27;cos_lr=maybe&#x27; is of invalid type str"),
        ("mosaic=2.5", "mosaic: &#x27;mosaic=2.5&#x27; is an invalid value"),
        ("nbs=1.5", "nbs: &#x27;nbs=1.5&#x27; is of invalid type float"),
        ("optimizer=Fastest", "optimizer: must be one of SGD"),
        ("epochs=5", "epochs: set it in its own field above."),
        ("this is not a pair", "line 1: &#x27;this is not a pair&#x27; is not key=value"),
    ],
)
def test_it_refuses_invalid_custom_arguments(
    owner_client: Client, dataset: Dataset, custom_args: str, message: str
) -> None:
    response = owner_client.post("/models/new/", form_data(dataset, custom_args=custom_args))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not YoloModel.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "Ensure this value is greater than or equal to 1."),
        ("batch", 0, "batch must be -1 (automatic) or a whole number"),
        ("imgsz", 8, "Ensure this value is greater than or equal to 32."),
        ("cache", "gpu", "Select a valid choice."),
        ("architecture", "yolo99z", "Select a valid choice."),
    ],
)
def test_it_refuses_invalid_base_arguments(
    owner_client: Client, dataset: Dataset, field: str, value: Any, message: str
) -> None:
    response = owner_client.post("/models/new/", form_data(dataset, **{field: value}))
    assert response.status_code == 400
    body = response.content.decode().replace("batch</label>", "")
    assert message.replace("batch ", "") in body
    assert not YoloModel.objects.exists()


def test_it_refuses_pretrained_without_a_local_weights_file(
    owner_client: Client, dataset: Dataset, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WEIGHTS_DIR = tmp_path / "weights"
    response = owner_client.post("/models/new/", form_data(dataset, pretrained="on"))
    assert response.status_code == 400
    assert "No pretrained weights for yolo11n on this server" in response.content.decode()
    assert not YoloModel.objects.exists()


def test_it_accepts_pretrained_when_the_weights_file_is_present(
    owner_client: Client, dataset: Dataset, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WEIGHTS_DIR = tmp_path / "weights"
    settings.WEIGHTS_DIR.mkdir()
    (settings.WEIGHTS_DIR / "yolo11n.pt").write_bytes(b"weights")
    response = owner_client.post("/models/new/", form_data(dataset, pretrained="on"))
    assert response.status_code == 302
    assert YoloModel.objects.get().pretrained is True


def test_it_refuses_a_dataset_that_is_not_ready(owner_client: Client, dataset: Dataset) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.INVALID)
    response = owner_client.post("/models/new/", form_data(dataset))
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_it_refuses_another_users_dataset(
    owner_client: Client, outsider: User, tmp_path: Path, dataset: Dataset
) -> None:
    theirs = make_validated_dataset(outsider, tmp_path / "other", name="theirs")
    response = owner_client.post("/models/new/", form_data(theirs))
    assert response.status_code == 400
    assert not YoloModel.objects.exists()
    page = owner_client.get("/models/new/").content.decode()
    assert "theirs" not in page


def test_create_rejects_other_methods(owner_client: Client) -> None:
    assert owner_client.put("/models/new/").status_code == 405


# --- list and page -----------------------------------------------------------------------------


def test_the_list_shows_only_the_owners_models(owner_client: Client, model: YoloModel, outsider: User) -> None:
    other_dataset = Dataset.objects.create(owner=outsider, name="d", status=Dataset.Status.READY)
    YoloModel.objects.create(owner=outsider, name="not mine", dataset=other_dataset, architecture="yolo11n")
    body = owner_client.get("/models/").content.decode()
    assert "detector" in body
    assert "not mine" not in body
    assert owner_client.post("/models/").status_code == 405


@pytest.mark.parametrize(
    ("tab", "expected"),
    [
        ("train", 'id="model-train-tab"'),
        ("metrics", "No epochs yet"),
        ("evaluation", "nothing to evaluate yet"),
        ("predict", 'id="predict-no-weights"'),
        ("configuration", "<code>lr0</code>"),
        ("billing", "Billing"),
        ("artifacts", "best.pt: not yet"),
    ],
)
def test_every_tab_renders_as_a_page_and_as_an_htmx_fragment(
    owner_client: Client, model: YoloModel, tab: str, expected: str
) -> None:
    page = owner_client.get(f"/models/{model.uid}/?tab={tab}")
    assert page.status_code == 200
    assert expected in page.content.decode()
    assert '<nav id="model-tabs" class="tabs"' in page.content.decode()
    assert "hx-swap-oob" not in page.content.decode()
    fragment = owner_client.get(f"/models/{model.uid}/?tab={tab}", headers=HTMX)
    body = fragment.content.decode()
    assert body.lstrip().startswith(f'<div id="model-tab" class="tab-panel" data-tab="{tab}">')
    assert expected in body
    # The tab bar comes along out of band, marking the tab now shown.
    nav = body[body.index('<nav id="model-tabs"') :]
    assert 'hx-swap-oob="true"' in nav.split(">", 1)[0]
    assert re.findall(r'class="tab current"\s+aria-current="page">(\w+)</a>', nav) == [tab.capitalize()]


def test_an_unknown_tab_is_404(owner_client: Client, model: YoloModel) -> None:
    assert owner_client.get(f"/models/{model.uid}/?tab=secrets").status_code == 404


def test_the_metrics_tab_lists_epoch_records(owner_client: Client, user: User, model: YoloModel) -> None:
    instance = cpu_instance()
    session = TrainingSession.objects.create(
        model=model, owner=user, instance_type=instance, target_epochs=3, status=TrainingSession.Status.TRAINING
    )
    now = timezone.now()
    for epoch, map50 in ((1, 0.25), (2, 0.5)):
        EpochRecord.objects.create(
            session=session,
            model=model,
            epoch=epoch,
            started_at=now - dt.timedelta(seconds=3),
            finished_at=now,
            duration_ms=2500,
            metrics={"metrics/mAP50(B)": map50},
        )
    body = owner_client.get(f"/models/{model.uid}/?tab=metrics").content.decode()
    assert "metrics/mAP50(B)" in body
    assert "0.2500" in body
    assert "0.5000" in body


def test_it_renames_a_model(owner_client: Client, model: YoloModel) -> None:
    assert owner_client.post(f"/models/{model.uid}/rename/", {"name": "better"}).status_code == 302
    model.refresh_from_db()
    assert model.name == "better"
    assert owner_client.get(f"/models/{model.uid}/rename/").status_code == 405


def test_it_streams_weights_from_storage(owner_client: Client, model: YoloModel) -> None:
    key = storage_put(f"{model.storage_prefix}/weights/best.pt", b"best weights bytes")
    YoloModel.objects.filter(pk=model.pk).update(best_weights=key)
    response = owner_client.get(f"/models/{model.uid}/weights/best/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="detector-best.pt"'
    assert b"".join(response.streaming_content) == b"best weights bytes"  # type: ignore[attr-defined]
    artifacts = owner_client.get(f"/models/{model.uid}/?tab=artifacts").content.decode()
    assert f"/models/{model.uid}/weights/best/" in artifacts
    assert owner_client.get(f"/models/{model.uid}/weights/last/").status_code == 404  # not yet
    assert owner_client.get(f"/models/{model.uid}/weights/other/").status_code == 404
    assert owner_client.post(f"/models/{model.uid}/weights/best/").status_code == 405


def test_another_user_gets_404_for_every_model_url(outsider_client: Client, model: YoloModel) -> None:
    key = storage_put(f"{model.storage_prefix}/weights/best.pt", b"secret")
    YoloModel.objects.filter(pk=model.pk).update(best_weights=key)
    base = f"/models/{model.uid}"
    assert outsider_client.get(f"{base}/").status_code == 404
    assert outsider_client.get(f"{base}/?tab=metrics", headers=HTMX).status_code == 404
    assert outsider_client.get(f"{base}/weights/best/").status_code == 404
    assert outsider_client.post(f"{base}/rename/", {"name": "stolen"}).status_code == 404
    model.refresh_from_db()
    assert model.name == "detector"
