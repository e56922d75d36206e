"""Plans through the API: a refused Start or Resume is 403 ``plan_required`` with the
web's message and the Plans page's address; a dataset upload past the storage quota is
413 and stores nothing; ``GET /billing/plan`` says which plan is in force."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from api.keys import create_key
from billing.models import Plan, PlanGrant, Subscription
from hubsite.models import User
from tests.api.conftest import KeyClient
from tests.api.test_platform_protocol import Remote
from tests.factories import fund
from tests.plan_fixtures import ensure_plans, grant, subscribe
from training.models import Dataset, TrainingSession, YoloModel

pytestmark = pytest.mark.django_db

FREE_REFUSAL = "Cloud Training needs Pro: your plan is Free."


def start(api_client: KeyClient, model: YoloModel) -> Any:
    body = {"model_id": model.pk, "mode": "epochs", "epochs": 3, "instance_type": "cpu"}
    return api_client.post("/api/v1/sessions", body, content_type="application/json")


@pytest.mark.plans
def test_a_free_users_start_is_403_plan_required_with_the_upgrade_url(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    ensure_plans()
    fund(user)
    response = start(api_client, model)
    assert response.status_code == 403
    assert response.json() == {
        "code": "plan_required",
        "message": FREE_REFUSAL,
        "upgrade_url": "http://testserver/plans/",
    }
    assert not TrainingSession.objects.exists()


@pytest.mark.plans
def test_a_resume_after_the_grace_period_is_403_plan_required(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None, settings: Any
) -> None:
    ensure_plans()
    fund(user)
    grant(user)
    started = start(api_client, model)
    assert started.status_code == 201, started.content
    session = TrainingSession.objects.get()
    TrainingSession.objects.filter(pk=session.pk).update(status=TrainingSession.Status.STOPPED)
    YoloModel.objects.filter(pk=model.pk).update(last_checkpoint="x/last.pt", epochs_completed=1)
    PlanGrant.objects.filter(account__user=user).delete()  # now on a past_due subscription, beyond its grace
    settings.PLANS_PAST_DUE_GRACE_DAYS = 1
    subscribe(user, status=Subscription.Status.PAST_DUE, past_due_since=timezone.now() - timedelta(days=2))

    response = api_client.post(f"/api/v1/sessions/{session.pk}/resume", {}, content_type="application/json")
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "plan_required"
    assert "payment is overdue" in response.json()["message"]
    assert response.json()["upgrade_url"] == "http://testserver/plans/"
    assert TrainingSession.objects.count() == 1


@pytest.mark.plans
def test_a_dataset_upload_past_the_quota_is_413_and_stores_nothing(api_client: KeyClient, user: User) -> None:
    ensure_plans()
    Plan.objects.filter(slug="free").update(storage_quota_bytes=10)
    upload = SimpleUploadedFile("shapes.zip", b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    response = api_client.post("/api/v1/datasets", {"name": "shapes", "file": upload})
    assert response.status_code == 413, response.content
    assert response.json()["code"] == "storage_quota_exceeded"
    assert response.json()["message"] == (
        "This upload needs 22 bytes but your plan's storage has 10 bytes left: delete datasets or weights, or upgrade."
    )
    assert response.json()["upgrade_url"] == "http://testserver/plans/"
    assert not Dataset.objects.exists()


@pytest.mark.plans
def test_the_plan_in_force_through_the_api(api_client: KeyClient, user: User) -> None:
    ensure_plans()
    assert api_client.get("/api/v1/billing/plan").json() == {
        "plan": "Free",
        "source": "default",
        "allows_cloud_training": False,
        "concurrent_sessions": 0,
        "storage_quota_bytes": 10 * 1024**3,
        "status": "",
        "current_period_end": None,
        "cancel_at_period_end": False,
        "grace_ends_at": None,
    }
    subscribe(user)
    answer = api_client.get("/api/v1/billing/plan").json()
    assert (answer["plan"], answer["source"], answer["allows_cloud_training"], answer["status"]) == (
        "Pro",
        "subscription",
        True,
        "active",
    )


def test_with_plans_off_the_api_says_so(api_client: KeyClient) -> None:
    answer = api_client.get("/api/v1/billing/plan").json()
    assert (answer["plan"], answer["source"], answer["allows_cloud_training"]) == (None, "off", True)


@pytest.mark.plans
def test_remote_training_stays_free_and_allowed_on_the_free_plan(user: User) -> None:
    ensure_plans()
    reply = Remote(create_key(user, "laptop", ["train"])[1]).start()
    session = TrainingSession.objects.get(pk=reply["runId"])
    assert (session.remote, session.status, reply["cancelled"]) == (True, "training", False)
