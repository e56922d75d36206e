from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from training.datasets import DEMO_DATASET_NAME, DEMO_SEGMENTATION_DATASET_NAME
from training.management.commands.seed_demo import DEMO_EMAIL
from training.models import Dataset


@pytest.mark.django_db
def test_seed_demo_gives_the_demo_user_ready_detection_and_segmentation_datasets() -> None:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)  # idempotent

    datasets = {dataset.name: dataset for dataset in Dataset.objects.filter(owner__email=DEMO_EMAIL)}
    assert sorted(datasets) == sorted([DEMO_DATASET_NAME, DEMO_SEGMENTATION_DATASET_NAME])
    for name, task in ((DEMO_DATASET_NAME, "detect"), (DEMO_SEGMENTATION_DATASET_NAME, "segment")):
        dataset = datasets[name]
        assert dataset.status == Dataset.Status.READY, dataset.errors
        assert dataset.task == task
        assert dataset.stats["splits"]["train"]["images"] == 64
        assert dataset.stats["splits"]["val"]["images"] == 16
    assert f"Demo dataset: {DEMO_DATASET_NAME} (Detection, ready)" in out.getvalue()
    assert f"Demo dataset: {DEMO_SEGMENTATION_DATASET_NAME} (Segmentation, ready)" in out.getvalue()
