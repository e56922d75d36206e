from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from training.datasets import DEMO_DATASET_NAME
from training.management.commands.seed_demo import DEMO_EMAIL
from training.models import Dataset


@pytest.mark.django_db
def test_seed_demo_gives_the_demo_user_one_ready_synthetic_dataset() -> None:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)  # idempotent

    dataset = Dataset.objects.get(owner__email=DEMO_EMAIL)
    assert dataset.name == DEMO_DATASET_NAME
    assert dataset.status == Dataset.Status.READY, dataset.errors
    assert dataset.stats["splits"]["train"]["images"] == 64
    assert dataset.stats["splits"]["val"]["images"] == 16
    assert f"Demo dataset: {DEMO_DATASET_NAME} (ready)" in out.getvalue()
