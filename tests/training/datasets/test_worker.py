"""End to end through a real ``rundramatiq`` worker: upload view -> commit -> broker ->
light worker -> validation -> the page stops polling."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from tests.helpers import WorkerFactory, wait_for
from tests.training.datasets.helpers import all_storage_keys, good_files, keys_outside, upload, zip_bytes
from training.datasets import storage_keys
from training.models import Dataset

HTMX = {"HX-Request": "true"}


def finished(name: str) -> Dataset | None:
    return Dataset.objects.filter(name=name).exclude(status=Dataset.Status.PROCESSING).first()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_validates_uploads_good_and_bad(
    owner_client: Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    before = all_storage_keys()
    assert upload(owner_client, zip_bytes(good_files(tmp_path, train=5, val=2)), name="good").status_code == 302
    assert upload(owner_client, b"not a zip at all", name="bad").status_code == 302
    good = Dataset.objects.get(name="good")
    assert owner_client.get(f"/datasets/{good.uid}/", headers=HTMX).status_code == 200  # still polling

    start_worker("default")
    good = wait_for(lambda: finished("good"), timeout=90)
    bad = wait_for(lambda: finished("bad"), timeout=30)

    assert good.status == Dataset.Status.READY, good.errors
    assert good.stats["splits"]["train"]["images"] == 5
    assert good.stats["splits"]["val"]["images"] == 2
    assert bad.status == Dataset.Status.INVALID
    assert "not a zip archive" in bad.errors[0]["message"]
    assert owner_client.get(f"/datasets/{good.uid}/", headers=HTMX).status_code == 286
    assert keys_outside(good.storage_prefix, before) - set(storage_keys(bad.storage_prefix)) == set()
