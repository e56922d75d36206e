"""Plans in training (docs/plans.md, "Limits in training"): Start, Resume and Pay Now
refused by the plan with the reason and an Upgrade link, the plan's concurrent-session
limit under the account lock, past_due grace, the Train step's plan panel, the storage
quota on uploads, and plans off as before."""

from __future__ import annotations

import io
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import CheckoutSession, Plan, Subscription
from hubsite.models import User
from tests.billing.helpers import run_at_once
from tests.factories import cpu_instance, fund, instance_type, make_model, make_ready_dataset
from tests.plan_fixtures import ensure_plans, grant, plan, subscribe
from tests.training.datasets.helpers import all_storage_keys
from training import sessions
from training.datasets import create_dataset
from training.models import Dataset, TrainingSession, WeightsUpload, YoloModel
from training.storage import StorageQuotaExceeded, stored_bytes

FREE_REFUSAL = "Cloud Training needs Pro: your plan is Free."


def url(name: str, model: YoloModel) -> str:
    return reverse(f"training:{name}", kwargs={"uid": model.uid})


def start_data(**overrides: Any) -> dict[str, Any]:
    return {"mode": "epochs", "epochs": 3, "instance_type": cpu_instance().pk, "payment": "balance", **overrides}


def start(user: User, model: YoloModel) -> TrainingSession:
    return sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))


@pytest.fixture
def funded_model(user: User, model: YoloModel) -> YoloModel:
    ensure_plans()
    fund(user, as_adjustment=True)
    return model


# --- Start refused on Free, allowed on Pro ---------------------------------------------


@pytest.mark.plans
def test_a_free_users_start_is_refused_with_the_reason_and_the_upgrade_link(
    user: User, funded_model: YoloModel, cpu_online: None
) -> None:
    with pytest.raises(sessions.StartRefused) as refused:
        start(user, funded_model)
    assert str(refused.value) == FREE_REFUSAL
    assert refused.value.upgrade_url == reverse("plans:index") == "/plans/"
    assert not TrainingSession.objects.exists()


@pytest.mark.plans
@pytest.mark.parametrize("htmx", [False, True])
def test_the_web_start_of_a_free_user_shows_the_reason_and_an_upgrade_button(
    owner_client: Client, funded_model: YoloModel, cpu_online: None, htmx: bool
) -> None:
    headers = {"HX-Request": "true"} if htmx else {}
    response = owner_client.post(url("train_start", funded_model), start_data(), headers=headers)
    assert response.status_code == 400
    body = response.content.decode()
    assert FREE_REFUSAL in body
    assert '<a class="button primary upgrade" href="/plans/">Upgrade</a>' in body
    assert not TrainingSession.objects.exists()


@pytest.mark.plans
def test_the_train_step_of_a_free_user_shows_the_plan_and_disables_start(
    owner_client: Client, funded_model: YoloModel, cpu_online: None
) -> None:
    page = owner_client.get(url("train_page", funded_model)).content.decode()
    assert "Plan: Free" in page
    assert "no Cloud Training" in page
    assert f"<li>{FREE_REFUSAL} " in page  # the blocker, with its Upgrade button
    assert 'href="/plans/">Upgrade</a>' in page
    assert 'class="primary start-button" disabled>' in page


@pytest.mark.plans
def test_pay_now_of_a_free_user_is_refused_before_any_checkout(
    owner_client: Client, funded_model: YoloModel, cpu_online: None, stripe_emulator: object
) -> None:
    timed = {"mode": "timed", "days": 0, "hours": 3, "minutes": 0}
    start_form = owner_client.post(url("train_start", funded_model), start_data(payment="pay_now", **timed))
    pay_now_page = owner_client.post(url("train_pay_now", funded_model), {"instance_type": "cpu", "hours": "3"})
    for response in (start_form, pay_now_page):
        assert response.status_code == 400
        assert FREE_REFUSAL in response.content.decode()
        assert 'href="/plans/">Upgrade</a>' in response.content.decode()
    assert not CheckoutSession.objects.exists()
    assert not TrainingSession.objects.exists()


@pytest.mark.plans
def test_pay_now_of_a_pro_user_opens_the_checkout(
    owner_client: Client, user: User, funded_model: YoloModel, cpu_online: None, stripe_emulator: object
) -> None:
    grant(user)
    data = start_data(payment="pay_now", mode="timed", days=0, hours=3, minutes=0)
    response = owner_client.post(url("train_start", funded_model), data, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.content.decode()
    assert CheckoutSession.objects.filter(account__user=user).count() == 1


@pytest.mark.plans
@pytest.mark.parametrize("on_pro", ["grant", "active", "trialing"])
def test_a_pro_user_may_start(user: User, funded_model: YoloModel, cpu_online: None, on_pro: str) -> None:
    if on_pro == "grant":
        grant(user)
    else:
        subscribe(user, status=on_pro)
    assert start(user, funded_model).status == TrainingSession.Status.QUEUED


@pytest.mark.plans
def test_a_canceled_or_expired_grant_leaves_the_user_on_free(
    user: User, funded_model: YoloModel, cpu_online: None
) -> None:
    subscribe(user, status=Subscription.Status.CANCELED)
    account = grant(user)
    account.plan_grants.update(until=timezone.now() - timedelta(minutes=1))
    with pytest.raises(sessions.StartRefused, match=FREE_REFUSAL):
        start(user, funded_model)


@pytest.mark.plans
def test_an_instance_type_outside_the_plan_is_refused_and_shown_disabled(
    owner_client: Client, user: User, funded_model: YoloModel, cpu_online: None
) -> None:
    pro = plan("pro")
    pro.instance_types.set([instance_type("rtx-4090")])  # Pro without CPU; no plan offers CPU then
    grant(user)
    with pytest.raises(sessions.StartRefused, match=r"CPU \(demo\) is not in your plan: your plan is Pro\.") as refused:
        start(user, funded_model)
    assert refused.value.upgrade_url == ""  # no plan would allow it
    page = owner_client.get(url("train_page", funded_model)).content.decode()
    assert "needs-plan" in page
    assert '<span class="instance-state">not in your plan</span>' in page


@pytest.mark.plans
def test_an_instance_type_a_better_plan_has_says_which(
    owner_client: Client, user: User, funded_model: YoloModel, cpu_online: None
) -> None:
    plan("pro").instance_types.set([instance_type("rtx-4090")])
    Plan.objects.create(slug="max", name="Max", monthly_price_cents=9_900, allows_cloud_training=True, display_order=2)
    grant(user)
    with pytest.raises(sessions.StartRefused, match=r"needs Max: your plan is Pro\.") as refused:
        start(user, funded_model)
    assert refused.value.upgrade_url == "/plans/"
    page = owner_client.get(url("train_page", funded_model)).content.decode()
    assert '<span class="instance-state">needs Max</span>' in page


# --- past_due -----------------------------------------------------------------------


@pytest.mark.plans
def test_past_due_within_grace_may_start_and_the_train_step_warns(
    owner_client: Client, user: User, funded_model: YoloModel, cpu_online: None, settings: Any
) -> None:
    settings.PLANS_PAST_DUE_GRACE_DAYS = 7
    since = timezone.now() - timedelta(days=2)
    subscribe(user, status=Subscription.Status.PAST_DUE, past_due_since=since)
    page = owner_client.get(url("train_page", funded_model)).content.decode()
    stops = (since + timedelta(days=7)).strftime("%-d %b %Y")
    assert f"Payment overdue: Cloud Training stops on {stops}." in page
    assert 'class="primary start-button" disabled>' not in page
    assert start(user, funded_model).status == TrainingSession.Status.QUEUED


@pytest.mark.plans
def test_past_due_after_grace_is_refused_with_the_overdue_message(
    owner_client: Client, user: User, funded_model: YoloModel, cpu_online: None, settings: Any
) -> None:
    settings.PLANS_PAST_DUE_GRACE_DAYS = 3
    subscribe(user, status=Subscription.Status.PAST_DUE, past_due_since=timezone.now() - timedelta(days=4))
    with pytest.raises(sessions.StartRefused, match="payment is overdue") as refused:
        start(user, funded_model)
    assert refused.value.upgrade_url == "/plans/"
    response = owner_client.post(url("train_start", funded_model), start_data())
    assert response.status_code == 400
    assert "Your Pro payment is overdue" in response.content.decode()
    assert not TrainingSession.objects.exists()


# --- the concurrent-session limit comes from the plan -----------------------------------


@pytest.mark.plans
def test_pro_allows_three_cloud_sessions_at_once_and_refuses_the_fourth(
    user: User, funded_model: YoloModel, tmp_path: Path, cpu_online: None
) -> None:
    grant(user)  # the account's own limit stays 1: the plan's 3 applies
    models = [funded_model] + [make_model(user, funded_model.dataset, epochs=2) for _ in range(3)]
    for model in models[:3]:
        start(user, model)
    with pytest.raises(sessions.StartRefused, match="3 training sessions are active"):
        start(user, models[3])
    assert TrainingSession.objects.count() == 3


@pytest.mark.plans
@pytest.mark.django_db(transaction=True)
def test_two_starts_at_once_with_a_plan_limit_of_one_start_exactly_one(
    user: User, tmp_path: Path, cpu_online: None
) -> None:
    ensure_plans()
    Plan.objects.filter(slug="pro").update(concurrent_sessions=1)
    account = grant(user)
    account.concurrent_session_limit = 5  # ignored: the plan's limit applies
    account.save(update_fields=["concurrent_session_limit"])
    fund(user, as_adjustment=True)
    dataset = make_ready_dataset(user, tmp_path)
    models = [make_model(user, dataset, epochs=2) for _ in range(2)]

    errors = run_at_once([partial(start, user, model) for model in models])

    assert TrainingSession.objects.count() == 1
    assert len(errors) == 1
    assert isinstance(errors[0], sessions.StartRefused)
    assert "Another training session is active" in str(errors[0])


# --- plans off ------------------------------------------------------------------------


def test_with_plans_off_a_user_on_no_plan_starts_as_before(
    owner_client: Client, user: User, funded_model: YoloModel, cpu_online: None
) -> None:
    assert start(user, funded_model).status == TrainingSession.Status.QUEUED
    page = owner_client.get(url("train_page", funded_model)).content.decode()
    assert "plan-allowance" not in page


# --- storage quota --------------------------------------------------------------------


def _tight_free_quota(used_bytes: int, left_bytes: int) -> None:
    Plan.objects.filter(slug="free").update(storage_quota_bytes=used_bytes + left_bytes)


@pytest.mark.plans
def test_a_dataset_upload_past_the_quota_is_refused_and_stores_nothing(
    owner_client: Client, user: User, tmp_path: Path
) -> None:
    ensure_plans()
    make_ready_dataset(user, tmp_path)
    used = stored_bytes(user)
    assert used > 0
    _tight_free_quota(used, 100)
    before_keys, before_rows = all_storage_keys(), Dataset.objects.count()

    response = owner_client.post(
        reverse("training:dataset_upload"), {"name": "big", "file": SimpleUploadedFile("big.zip", b"x" * 5_000)}
    )

    assert response.status_code == 413
    body = response.content.decode()
    assert (
        "This upload needs 4.9 KB but your plan&#x27;s storage has 100 bytes left: "
        "delete datasets or weights, or upgrade."
    ) in body
    assert 'href="/plans/">Upgrade</a>' in body
    assert (all_storage_keys(), Dataset.objects.count()) == (before_keys, before_rows)
    page = owner_client.get(reverse("training:dataset_list")).content.decode()
    assert f"Storage: {filesizeformat(used)} of {filesizeformat(used + 100)} used" in page


@pytest.mark.plans
def test_a_file_without_a_declared_size_is_measured_then_removed_when_it_does_not_fit(
    user: User, tmp_path: Path
) -> None:
    ensure_plans()
    _tight_free_quota(0, 1_000)
    before_keys = all_storage_keys()
    with pytest.raises(StorageQuotaExceeded, match="your plan's storage has"):
        create_dataset(user, "streamed", io.BytesIO(b"y" * 2_000))  # BytesIO: no .size
    assert all_storage_keys() == before_keys
    assert not Dataset.objects.exists()


@pytest.mark.plans
def test_a_weights_upload_past_the_quota_is_refused_and_stores_nothing(owner_client: Client, user: User) -> None:
    ensure_plans()
    _tight_free_quota(0, 10)
    before_keys = all_storage_keys()
    response = owner_client.post(
        reverse("training:weights_upload"), {"name": "w", "file": SimpleUploadedFile("w.pt", b"z" * 3_000)}
    )
    assert response.status_code == 413
    assert "your plan&#x27;s storage has" in response.content.decode()
    assert not WeightsUpload.objects.exists()
    assert all_storage_keys() == before_keys


@pytest.mark.plans
def test_over_the_quota_after_a_downgrade_nothing_is_deleted(owner_client: Client, user: User, tmp_path: Path) -> None:
    ensure_plans()
    dataset = make_ready_dataset(user, tmp_path)
    Plan.objects.filter(slug="free").update(storage_quota_bytes=1)
    page = owner_client.get(reverse("training:dataset_list")).content.decode()
    assert "over your plan's quota, so new uploads are refused" in page
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_with_plans_off_uploads_have_no_quota(user: User, tmp_path: Path) -> None:
    ensure_plans()
    Plan.objects.filter(slug="free").update(storage_quota_bytes=1)
    dataset = create_dataset(user, "any", io.BytesIO(b"y" * 2_000))
    assert dataset.archive_size == 2_000
