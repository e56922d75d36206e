from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from hubsite.models import User
from tests.factories import make_validated_dataset
from tests.training.datasets.helpers import good_files, zip_bytes
from training.datasets import archive_key, create_dataset, storage_keys
from training.models import Dataset, YoloModel

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def dataset(user: User, tmp_path: Path) -> Dataset:
    return make_validated_dataset(user, tmp_path)


def processing_dataset(user: User, tmp_path: Path) -> Dataset:
    return create_dataset(user, "waiting", io.BytesIO(zip_bytes(good_files(tmp_path))))


def urls_for(dataset: Dataset) -> dict[str, tuple[str, str]]:
    """Every dataset URL with the method it answers."""
    base = f"/datasets/{dataset.uid}"
    return {
        "detail": ("get", f"{base}/"),
        "rename": ("post", f"{base}/rename/"),
        "delete": ("post", f"{base}/delete/"),
        "download": ("get", f"{base}/download/"),
        "sample": ("get", f"{base}/samples/0.jpg"),
    }


def test_the_list_shows_only_the_owners_datasets(
    owner_client: Client, outsider: User, dataset: Dataset, tmp_path: Path
) -> None:
    make_validated_dataset(outsider, tmp_path, name="theirs")
    body = owner_client.get("/datasets/").content.decode()
    assert dataset.name in body
    assert "theirs" not in body
    assert "Ready" in body


def test_the_list_rejects_post(owner_client: Client) -> None:
    assert owner_client.post("/datasets/").status_code == 405


def test_the_list_and_upload_need_a_login(client: Client) -> None:
    assert client.get("/datasets/").status_code == 302
    assert client.get("/datasets/upload/").status_code == 302


def test_the_upload_page_has_a_progress_bar_and_no_cdn(owner_client: Client) -> None:
    body = owner_client.get("/datasets/upload/").content.decode()
    assert "hx-on::xhr:progress" in body
    assert "<progress" in body
    assert "https://" not in body.split("<body", 1)[1].split("</form>")[0]


def test_the_upload_rejects_other_methods(owner_client: Client) -> None:
    assert owner_client.put("/datasets/upload/").status_code == 405


def test_the_upload_checks_csrf(user: User, tmp_path: Path) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/datasets/upload/", {"name": "x", "file": ("a.zip", b"PK")})
    assert response.status_code == 403
    assert not Dataset.objects.exists()


def test_an_htmx_upload_redirects_the_client_to_the_dataset(owner_client: Client, tmp_path: Path) -> None:
    upload = io.BytesIO(zip_bytes(good_files(tmp_path)))
    upload.name = "my-shapes.zip"
    response = owner_client.post("/datasets/upload/", {"name": "", "file": upload}, headers=HTMX)
    dataset = Dataset.objects.get()
    assert dataset.name == "my-shapes"  # the file name when no name is given
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/datasets/{dataset.uid}/"
    assert storage_keys(dataset.storage_prefix) == [archive_key(dataset)]


def test_the_detail_page_shows_stats_bars_and_samples(owner_client: Client, dataset: Dataset) -> None:
    body = owner_client.get(f"/datasets/{dataset.uid}/").content.decode()
    assert 'class="bar"' in body
    for name in dataset.class_names:
        assert name in body
    assert f"/datasets/{dataset.uid}/samples/0.jpg" in body
    assert "hx-trigger" not in body  # nothing to poll once ready


def test_the_detail_page_polls_while_processing_and_stops_with_286(
    owner_client: Client, user: User, tmp_path: Path
) -> None:
    from training.datasets import run_validation

    waiting = processing_dataset(user, tmp_path)
    page = owner_client.get(f"/datasets/{waiting.uid}/").content.decode()
    assert 'hx-trigger="every 2s"' in page

    fragment = owner_client.get(f"/datasets/{waiting.uid}/", headers=HTMX)
    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith('<section id="dataset-body"')

    run_validation(waiting.pk)
    done = owner_client.get(f"/datasets/{waiting.uid}/", headers=HTMX)
    assert done.status_code == 286
    assert "Ready" in done.content.decode()
    assert "hx-trigger" not in done.content.decode()


def test_the_detail_page_rejects_post(owner_client: Client, dataset: Dataset) -> None:
    assert owner_client.post(f"/datasets/{dataset.uid}/").status_code == 405


def test_it_renames(owner_client: Client, dataset: Dataset) -> None:
    response = owner_client.post(f"/datasets/{dataset.uid}/rename/", {"name": "  Renamed shapes "})
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.name == "Renamed shapes"


def test_it_refuses_an_empty_name(owner_client: Client, dataset: Dataset) -> None:
    response = owner_client.post(f"/datasets/{dataset.uid}/rename/", {"name": ""}, follow=True)
    dataset.refresh_from_db()
    assert dataset.name == "shapes"
    assert "The name was not changed" in response.content.decode()


def test_rename_rejects_get(owner_client: Client, dataset: Dataset) -> None:
    assert owner_client.get(f"/datasets/{dataset.uid}/rename/").status_code == 405


def test_it_deletes_the_dataset_and_its_files(owner_client: Client, dataset: Dataset) -> None:
    prefix = dataset.storage_prefix
    assert storage_keys(prefix)
    response = owner_client.post(f"/datasets/{dataset.uid}/delete/")
    assert response.status_code == 302
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert storage_keys(prefix) == []


def test_it_refuses_to_delete_a_dataset_a_model_uses(owner_client: Client, user: User, dataset: Dataset) -> None:
    YoloModel.objects.create(owner=user, name="detector", dataset=dataset, architecture="yolo11n")
    response = owner_client.post(f"/datasets/{dataset.uid}/delete/", follow=True)
    assert "is used by 1 model(s) (detector) and cannot be deleted" in response.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert default_storage.exists(archive_key(dataset))


def test_delete_rejects_get(owner_client: Client, dataset: Dataset) -> None:
    assert owner_client.get(f"/datasets/{dataset.uid}/delete/").status_code == 405
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_it_downloads_the_zip_from_storage(owner_client: Client, dataset: Dataset) -> None:
    response = owner_client.get(f"/datasets/{dataset.uid}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="shapes.zip"'
    with default_storage.open(archive_key(dataset)) as stored:
        assert b"".join(response.streaming_content) == stored.read()  # type: ignore[attr-defined]


def test_it_serves_samples_and_404s_for_unknown_ones(owner_client: Client, dataset: Dataset) -> None:
    sample = owner_client.get(f"/datasets/{dataset.uid}/samples/0.jpg")
    assert sample.status_code == 200
    assert sample["Content-Type"] == "image/jpeg"
    assert b"".join(sample.streaming_content)[:2] == b"\xff\xd8"  # type: ignore[attr-defined]
    assert owner_client.get(f"/datasets/{dataset.uid}/samples/99.jpg").status_code == 404


def test_download_rejects_post(owner_client: Client, dataset: Dataset) -> None:
    assert owner_client.post(f"/datasets/{dataset.uid}/download/").status_code == 405


@pytest.mark.parametrize("name", ["detail", "rename", "delete", "download", "sample"])
def test_another_user_gets_404_for_every_dataset_url(outsider_client: Client, dataset: Dataset, name: str) -> None:
    method, url = urls_for(dataset)[name]
    response = getattr(outsider_client, method)(url, {"name": "stolen"} if method == "post" else None)
    assert response.status_code == 404
    dataset.refresh_from_db()
    assert dataset.name == "shapes"


def test_another_user_gets_404_for_the_htmx_fragment(outsider_client: Client, dataset: Dataset) -> None:
    assert outsider_client.get(f"/datasets/{dataset.uid}/", headers=HTMX).status_code == 404
