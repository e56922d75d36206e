from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from billing.models import PlanGrant
from billing.plans.standing import standing_of
from billing.services import account_for
from hubsite.models import User
from training.datasets import DEMO_DATASET_NAME, DEMO_SEGMENTATION_DATASET_NAME
from training.management.commands.seed_demo import DEMO_EMAIL, DEMO_GRANT_REASON
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


@pytest.mark.plans
@pytest.mark.django_db
def test_seed_demo_puts_the_demo_user_on_pro_by_one_grant_and_new_users_stay_on_free() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # idempotent: one grant

    demo = account_for(User.objects.get(email=DEMO_EMAIL))
    grants = list(PlanGrant.objects.filter(account=demo))
    assert [(grant.plan.slug if grant.plan else None, grant.reason, grant.granted_by) for grant in grants] == [
        ("pro", DEMO_GRANT_REASON, None)
    ]
    standing = standing_of(demo)
    assert (standing.source, standing.plan and standing.plan.allows_cloud_training) == ("grant", True)

    newcomer = account_for(User.objects.create_user(email="new@example.com", password="x" * 12))
    assert (standing_of(newcomer).source, str(standing_of(newcomer).plan)) == ("default", "Free")
