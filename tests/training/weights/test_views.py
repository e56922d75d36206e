"""Uploaded-weights pages and choosing starting weights on the model form: owner
scoping, limits, the copy a new model keeps, and its lineage on the model page."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from hubsite.models import User
from tests.factories import make_model
from tests.training.weights.helpers import write_yolo_checkpoint
from training.models import Dataset, StartKind, WeightsUpload, YoloModel
from training.weights import create_weights_upload

pytestmark = pytest.mark.django_db


def ready_upload(user: User, tmp_path: Path, name: str = "mine") -> WeightsUpload:
    path = write_yolo_checkpoint(tmp_path / f"{name}.pt", "yolo11n", names=["a", "b"])
    with path.open("rb") as handle:
        upload = create_weights_upload(user, name, path.name, handle, validate_now=True)
    assert upload.status == WeightsUpload.Status.READY, upload.error
    return upload


def trained_model(user: User, name: str = "parent", epoch: int = 12) -> YoloModel:
    """A model with best and last weights in storage (bytes stand in for a checkpoint)."""
    model = make_model(user)
    model.name = name
    model.dataset.class_names = ["circle", "square", "triangle"]
    model.dataset.save()
    key = default_storage.save(f"{model.storage_prefix}/checkpoints/epoch-{epoch:04d}.pt", ContentFile(b"weights"))
    model.best_weights.name = model.last_checkpoint.name = key
    model.epochs_completed = epoch
    model.save()
    return model


def form_data(dataset: Dataset, **extra: str) -> dict[str, str]:
    return {
        "name": "child",
        "dataset": str(dataset.pk),
        "architecture": "yolov8n",
        "epochs": "3",
        "imgsz": "64",
        "batch": "8",
        "patience": "100",
        "cache": "none",
        **extra,
    }


def test_the_list_shows_only_the_owners_uploads(
    owner_client: Client, user: User, outsider: User, tmp_path: Path
) -> None:
    ready_upload(user, tmp_path, "mine")
    ready_upload(outsider, tmp_path, "theirs")

    body = owner_client.get("/weights/").content.decode()

    assert "mine" in body
    assert "theirs" not in body


def test_uploading_stores_the_file_and_queues_the_check(owner_client: Client, user: User, tmp_path: Path) -> None:
    path = write_yolo_checkpoint(tmp_path / "best.pt")
    with path.open("rb") as handle:
        response = owner_client.post("/weights/upload/", {"file": handle})

    upload = WeightsUpload.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == f"/weights/{upload.uid}/"
    assert (upload.name, upload.file_name, upload.status) == ("best", "best.pt", WeightsUpload.Status.PROCESSING)
    assert default_storage.exists(upload.upload.name or "")


def test_an_upload_over_the_limit_is_refused_and_stores_nothing(
    owner_client: Client, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WEIGHTS_MAX_UPLOAD_BYTES = 1000
    path = tmp_path / "big.pt"
    path.write_bytes(b"x" * 200_000)
    with path.open("rb") as handle:
        response = owner_client.post("/weights/upload/", {"file": handle})

    assert response.status_code == 413
    assert "larger than the 1000 bytes limit for weights" in response.content.decode()
    assert not WeightsUpload.objects.exists()


def test_a_refused_upload_shows_its_reason(owner_client: Client, user: User, tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_bytes(b"not a checkpoint")
    with path.open("rb") as handle:
        upload = create_weights_upload(user, "notes", path.name, handle, validate_now=True)

    body = owner_client.get(f"/weights/{upload.uid}/").content.decode()

    assert "These weights cannot be used" in body
    assert "This is not a PyTorch checkpoint" in body


def test_another_users_upload_is_a_404_everywhere(outsider_client: Client, user: User, tmp_path: Path) -> None:
    upload = ready_upload(user, tmp_path)

    assert outsider_client.get(f"/weights/{upload.uid}/").status_code == 404
    assert outsider_client.post(f"/weights/{upload.uid}/delete/").status_code == 404
    assert WeightsUpload.objects.filter(pk=upload.pk).exists()


def test_delete_needs_post_and_removes_the_files(owner_client: Client, user: User, tmp_path: Path) -> None:
    upload = ready_upload(user, tmp_path)
    key = upload.weights.name or ""

    assert owner_client.get(f"/weights/{upload.uid}/delete/").status_code == 405
    response = owner_client.post(f"/weights/{upload.uid}/delete/")

    assert response.status_code == 302
    assert not WeightsUpload.objects.filter(pk=upload.pk).exists()
    assert not default_storage.exists(key)


def test_the_form_offers_the_owners_models_and_uploads_only(
    owner_client: Client, user: User, outsider: User, tmp_path: Path
) -> None:
    trained_model(user, "my-parent")
    trained_model(outsider, "their-parent")
    ready_upload(user, tmp_path, "my-upload")

    body = owner_client.get("/models/new/").content.decode()

    assert "my-parent: best weights, epoch 12 (yolo11n, detection, 3 classes)" in body
    assert "my-parent: last weights, epoch 12" in body
    assert "my-upload.pt: yolo11n, 2 classes" in body
    assert "their-parent" not in body


def test_another_users_model_cannot_be_chosen_as_parent(
    owner_client: Client, user: User, outsider: User, tmp_path: Path
) -> None:
    theirs = trained_model(outsider, "their-parent")
    dataset = make_model(user).dataset

    response = owner_client.post("/models/new/", form_data(dataset, start_from=f"model:{theirs.uid}:best"))

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not YoloModel.objects.filter(name="child").exists()


def test_starting_from_an_own_model_copies_its_weights_and_records_the_lineage(
    owner_client: Client, user: User
) -> None:
    parent = trained_model(user, "parent", epoch=12)
    dataset = make_model(user).dataset

    response = owner_client.post("/models/new/", form_data(dataset, start_from=f"model:{parent.uid}:best"))

    child = YoloModel.objects.get(name="child")
    assert response.status_code == 302
    assert (child.start_kind, child.parent, child.architecture, child.pretrained) == (
        StartKind.MODEL,
        parent,
        "yolo11n",  # the parent's, not the form's yolov8n
        False,
    )
    assert child.start_weights.name == f"{child.storage_prefix}/start/weights.pt"
    assert default_storage.open(child.start_weights.name).read() == b"weights"
    page = owner_client.get(f"/models/{child.uid}/").content.decode()
    assert f'Fine-tuned from <a href="/models/{parent.uid}/">parent</a> (best weights, epoch 12)' in page

    parent.delete()  # the parent goes; the child keeps its copy and says where it came from
    child.refresh_from_db()
    assert child.parent is None
    assert default_storage.exists(child.start_weights.name)
    page = owner_client.get(f"/models/{child.uid}/").content.decode()
    assert "Fine-tuned from parent (best weights, epoch 12) (that model has since been deleted)" in page


def test_starting_from_an_upload_copies_the_checked_weights(owner_client: Client, user: User, tmp_path: Path) -> None:
    upload = ready_upload(user, tmp_path, "mine")
    dataset = make_model(user).dataset

    response = owner_client.post("/models/new/", form_data(dataset, start_from=f"upload:{upload.uid}"))

    assert response.status_code == 302
    child = YoloModel.objects.get(name="child")
    assert (child.start_kind, child.parent, child.architecture) == (StartKind.UPLOAD, None, "yolo11n")
    assert child.lineage == "Fine-tuned from the uploaded file mine.pt (yolo11n, 2 classes)"
    owner_client.post(f"/weights/{upload.uid}/delete/")
    assert default_storage.exists(child.start_weights.name or "")


def test_weights_of_another_task_than_the_dataset_are_refused(owner_client: Client, user: User) -> None:
    parent = trained_model(user, "detector")
    pose_data = Dataset.objects.create(owner=user, name="people", task=Dataset.Task.POSE, status="ready")

    response = owner_client.post("/models/new/", form_data(pose_data, start_from=f"model:{parent.uid}:best"))

    assert response.status_code == 400
    assert "detector is a detection model; people is a pose dataset" in response.content.decode()


def test_pretrained_is_the_default_only_where_weights_are_installed(
    owner_client: Client, user: User, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WEIGHTS_DIR = tmp_path
    body = owner_client.get("/models/new/").content.decode()
    assert "On this server: none yet" in body
    assert 'name="pretrained" checked' not in body.replace('id="id_pretrained" ', "")

    (tmp_path / "yolo11n.pt").write_bytes(b"installed")
    body = owner_client.get("/models/new/").content.decode()
    assert "On this server: yolo11n." in body
    assert "checked" in body.split('name="pretrained"')[1].split(">")[0]
