"""Datasets through the API: a real zip uploaded, validated as on the web, then
listed and inspected; bad uploads refused in JSON with nothing created; another
user's ids a 404 like a missing one; uploads and deletes need the train scope."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from api.models import ApiKey
from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import make_model, make_ready_dataset
from tests.training.datasets.helpers import all_storage_keys, good_files, zip_bytes
from training.datasets import run_validation
from training.datasets.uri import dataset_uri
from training.models import Dataset

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

URL = "/api/v1/datasets"


def _upload(client: Client, data: bytes, **fields: str) -> Response:
    return client.post(URL, {"name": "shapes", **fields, "file": SimpleUploadedFile("shapes.zip", data)})


def test_an_uploaded_zip_is_validated_and_becomes_ready(api_client: KeyClient, user: User, tmp_path: Path) -> None:
    response = _upload(api_client, zip_bytes(good_files(tmp_path)))

    assert response.status_code == 201, response.content.decode()
    body = response.json()
    dataset = Dataset.objects.get(owner=user)
    assert (body["id"], body["uid"], body["name"], body["status"]) == (
        dataset.pk,
        str(dataset.uid),
        "shapes",
        "processing",
    )
    assert (dataset.archive.name or "").startswith(dataset.storage_prefix + "/")

    run_validation(dataset.pk)  # what the light worker's actor runs

    detail = api_client.get(f"{URL}/{dataset.pk}").json()
    assert detail["status"] == "ready"
    assert detail["task"] == "detect"
    assert detail["problems"] == []
    assert detail["class_names"] == Dataset.objects.get(pk=dataset.pk).class_names != []
    assert detail["stats"]["splits"]
    assert detail["uri"] == dataset_uri(dataset) == f"ul://{user.email}/datasets/{dataset.uid}"
    assert detail["archive_size"] > 0


def test_the_task_chosen_at_upload_is_kept(api_client: KeyClient, user: User, tmp_path: Path) -> None:
    response = _upload(api_client, zip_bytes(good_files(tmp_path)), task="detect")
    assert response.status_code == 201
    assert Dataset.objects.get(owner=user).declared_task == "detect"


def test_an_invalid_dataset_reports_its_problems(api_client: KeyClient, user: User, tmp_path: Path) -> None:
    files = {name: data for name, data in good_files(tmp_path).items() if not name.endswith("data.yaml")}
    response = _upload(api_client, zip_bytes(files))
    assert response.status_code == 201
    dataset = Dataset.objects.get(owner=user)
    run_validation(dataset.pk)

    detail = api_client.get(f"{URL}/{dataset.pk}").json()

    assert detail["status"] == "invalid"
    assert detail["problems"]
    assert all("message" in problem for problem in detail["problems"])


def test_the_list_is_the_owners_datasets_paginated(
    api_client: KeyClient, user: User, outsider: User, tmp_path: Path
) -> None:
    mine = [make_ready_dataset(user, tmp_path / str(n)) for n in range(3)]
    make_ready_dataset(outsider, tmp_path / "theirs")

    first = api_client.get(f"{URL}?limit=2").json()
    rest = api_client.get(f"{URL}?limit=2&offset=2").json()

    assert first["count"] == 3
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == [dataset.pk for dataset in reversed(mine)]
    assert set(first["items"][0]) == {
        "id", "uid", "name", "task", "status", "class_names", "archive_size", "created_at",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("data", "fields", "status", "code"),
    [
        (b"this is not a zip", {}, 422, "not_a_zip"),
        (None, {}, 422, "invalid"),
        (b"PK", {"task": "painting"}, 422, "invalid"),
    ],
)
def test_bad_uploads_are_json_errors_that_create_nothing(
    api_client: KeyClient, data: bytes | None, fields: dict[str, str], status: int, code: str
) -> None:
    before = all_storage_keys()
    if data is None:
        response = api_client.post(URL, {"name": "shapes", **fields})
    else:
        response = _upload(api_client, data, **fields)

    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    assert not Dataset.objects.exists()
    assert all_storage_keys() == before


def test_a_missing_file_names_the_field(api_client: KeyClient) -> None:
    body = api_client.post(URL, {"name": "shapes"}).json()
    assert body["errors"] == [{"field": "file", "message": "This field is required."}]


def test_an_oversized_upload_is_a_413_with_the_web_message(
    api_client: KeyClient, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 10_000
    before = all_storage_keys()
    response = _upload(api_client, zip_bytes(good_files(tmp_path)))

    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "too_large"
    assert "larger than the 9.8 KB upload limit" in body["message"]
    assert not Dataset.objects.exists()
    assert all_storage_keys() == before


def test_a_read_key_cannot_upload_or_delete(user: User, tmp_path: Path) -> None:
    client = key_client(user, "read")
    response = _upload(client, zip_bytes(good_files(tmp_path)))
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"
    assert not Dataset.objects.exists()
    dataset = make_ready_dataset(user, tmp_path)
    assert client.delete(f"{URL}/{dataset.pk}").json()["code"] == "scope_missing"
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_train_only_key_cannot_read(user: User) -> None:
    response = key_client(user, "train").get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"


def test_delete_removes_the_dataset_and_its_files(api_client: KeyClient, user: User, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path)
    key = dataset.archive.name
    assert key in all_storage_keys()

    response = api_client.delete(f"{URL}/{dataset.pk}")

    assert response.status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert key not in all_storage_keys()


def test_a_dataset_a_model_uses_is_not_deleted(api_client: KeyClient, user: User, tmp_path: Path) -> None:
    dataset = make_ready_dataset(user, tmp_path)
    make_model(user, dataset)

    response = api_client.delete(f"{URL}/{dataset.pk}")

    assert response.status_code == 409
    assert response.json() == {
        "code": "dataset_in_use",
        "message": "shapes is used by 1 model(s) (shapes-detector) and cannot be deleted. "
        "Models keep their dataset so their training can be resumed.",
        "models": ["shapes-detector"],
    }
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_another_users_dataset_is_a_404_like_a_missing_one(
    outsider_api_client: KeyClient, user: User, tmp_path: Path
) -> None:
    dataset = make_ready_dataset(user, tmp_path)
    missing = outsider_api_client.get(f"{URL}/999999")
    assert missing.status_code == 404

    for response in (outsider_api_client.get(f"{URL}/{dataset.pk}"), outsider_api_client.delete(f"{URL}/{dataset.pk}")):
        assert response.status_code == 404
        assert response.json() == missing.json()
        assert missing.json() == {"code": "not_found", "message": "No such object, or it is not yours."}
    assert outsider_api_client.get(URL).json() == {"items": [], "count": 0}
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_an_upload_is_the_keys_owners(outsider_api_client: KeyClient, outsider: User, tmp_path: Path) -> None:
    response = outsider_api_client.post(URL, {"file": SimpleUploadedFile("mine.zip", zip_bytes(good_files(tmp_path)))})
    assert response.status_code == 201
    dataset = Dataset.objects.get()
    assert dataset.owner == outsider
    assert dataset.name == "mine"  # the web form's default: the file's name
    assert ApiKey.objects.filter(owner=outsider).exists()


def test_the_upload_is_described_in_the_schema() -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    body = schema["paths"][URL]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(body["properties"]) == {"name", "task", "file"}
