"""The upload limit counts the whole request, not each file part: real multipart
POSTs through the upload view, refused with 413 and the message, nothing stored."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.training.datasets.helpers import all_storage_keys
from training.forms import UPLOAD_REQUEST_OVERHEAD_BYTES
from training.models import Dataset

pytestmark = pytest.mark.django_db

LIMIT = 100_000
MESSAGE = "larger than the 97.7 KB upload limit"


@pytest.fixture(autouse=True)
def small_limit(settings: SettingsWrapper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings.DATASET_MAX_UPLOAD_BYTES = LIMIT
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # file parts over this go to temporary files...
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)  # ...here, so the test can see whether any was written
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    return spool


def part(size: int, name: str = "part.zip") -> io.BytesIO:
    data = io.BytesIO(b"x" * size)
    data.name = name
    return data


def assert_refused(response: object, before: set[str], spool: Path) -> None:
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert MESSAGE in response.content.decode()  # type: ignore[attr-defined]
    assert not Dataset.objects.exists()
    assert all_storage_keys() == before
    assert list(spool.iterdir()) == []


def test_two_file_parts_each_under_the_limit_are_refused_together(owner_client: Client, small_limit: Path) -> None:
    before = all_storage_keys()
    response = owner_client.post(
        reverse("training:dataset_upload"),
        {"name": "two", "file": part(LIMIT * 3 // 4), "file2": part(LIMIT * 3 // 4, "second.zip")},
    )
    assert_refused(response, before, small_limit)


def test_extra_fields_that_push_the_request_over_the_limit_are_refused(owner_client: Client, small_limit: Path) -> None:
    before = all_storage_keys()
    response = owner_client.post(
        reverse("training:dataset_upload"),
        {"name": "padded", "file": part(LIMIT // 2), "padding": "y" * (LIMIT // 2 + UPLOAD_REQUEST_OVERHEAD_BYTES)},
    )
    assert_refused(response, before, small_limit)


def test_fields_over_django_s_own_limit_get_the_same_clear_refusal(
    owner_client: Client, small_limit: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 10 * LIMIT
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT // 10
    before = all_storage_keys()
    response = owner_client.post(reverse("training:dataset_upload"), {"name": "fields", "padding": "y" * LIMIT})
    assert response.status_code == 413
    assert "larger than the 976.6 KB upload limit" in response.content.decode()
    assert not Dataset.objects.exists()
    assert all_storage_keys() == before


def test_the_refusal_answers_htmx_with_the_form_fragment(owner_client: Client, small_limit: Path) -> None:
    response = owner_client.post(
        reverse("training:dataset_upload"),
        {"name": "two", "file": part(LIMIT * 3 // 4), "file2": part(LIMIT * 3 // 4)},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 413
    assert body.lstrip().startswith('<form id="upload-form"')
    assert MESSAGE in body


def test_a_request_within_the_limit_is_stored(owner_client: Client, small_limit: Path) -> None:
    response = owner_client.post(reverse("training:dataset_upload"), {"name": "fits", "file": part(LIMIT - 10)})
    assert response.status_code == 302
    dataset = Dataset.objects.get(name="fits")
    assert dataset.archive_size == LIMIT - 10


def test_the_refusal_still_needs_no_csrf_token_and_changes_nothing(user: object, small_limit: Path) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)  # type: ignore[arg-type]
    before = all_storage_keys()
    response = client.post(reverse("training:dataset_upload"), {"name": "big", "file": part(LIMIT * 2)})
    assert_refused(response, before, small_limit)
    accepted_size = client.post(reverse("training:dataset_upload"), {"name": "small", "file": part(100)})
    assert accepted_size.status_code == 403  # CSRF is still checked for anything that could be stored
    assert not Dataset.objects.exists()
