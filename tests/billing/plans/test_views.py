"""The Plans page: the cards, the user's standing in every state, Upgrade's refusals,
Manage, the success page, and CSRF on the POSTs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import Account, CheckoutSession, Invoice, Plan, PlanGrant, Subscription
from hubsite.models import User
from tests.billing.helpers import run_at_once
from tests.billing.subscription_helpers import customer_of, free_plan, pro_plan
from tests.factories import make_instance_type

INDEX = "/plans/"
UPGRADE = "/plans/upgrade/pro/"
MANAGE = "/plans/manage/"


def subscribe(user: User, **fields: object) -> Subscription:
    account = customer_of(user)
    values: dict[str, object] = {
        "status": "active",
        "current_period_end": timezone.now() + timedelta(days=20),
        "stripe_customer_id": account.stripe_customer_id,
    }
    values.update(fields)
    return Subscription.objects.create(account=account, plan=pro_plan(), stripe_subscription_id="sub_test_1", **values)


@pytest.mark.plans
def test_the_page_shows_each_public_plan_as_a_card(owner_client: Client) -> None:
    pro = pro_plan()
    Plan.objects.filter(pk=pro.pk).update(storage_quota_bytes=200 * 1024**3)
    Plan.objects.create(slug="secret", name="Secret", monthly_price_cents=9_900, is_public=False)
    small = make_instance_type()
    team = Plan.objects.create(slug="team", name="Team", monthly_price_cents=5_000, allows_cloud_training=True)
    team.instance_types.add(small)
    page = owner_client.get(INDEX).content.decode()
    assert "Free" in page
    assert "No monthly fee" in page
    assert "US$20.00 / month" in page
    assert "200.0\xa0GB" in page
    assert "every instance type" in page
    assert small.name in page
    assert "Secret" not in page
    assert "Upgrade to Pro" in page
    assert 'Your plan: <strong id="current-plan">Free</strong>' in page
    assert "(the default plan)" in page


def test_with_plans_off_the_page_says_everyone_may_train(owner_client: Client) -> None:
    pro_plan()
    page = owner_client.get(INDEX).content.decode()
    assert "Plans are off on this site" in page
    assert "Upgrade to Pro" not in page


@pytest.mark.plans
def test_a_subscriber_sees_the_renewal_date_and_manage(owner_client: Client, user: User) -> None:
    subscription = subscribe(user)
    page = owner_client.get(INDEX).content.decode()
    assert "(your subscription)" in page
    assert f"Renews on {subscription.current_period_end:%Y-%m-%d}" in page
    assert "Manage or cancel" in page
    assert "Upgrade to Pro" not in page


@pytest.mark.plans
def test_a_cancelled_subscription_says_when_it_ends(owner_client: Client, user: User) -> None:
    subscription = subscribe(user, cancel_at_period_end=True)
    page = owner_client.get(INDEX).content.decode()
    assert f"Cancels on {subscription.current_period_end:%Y-%m-%d}" in page
    assert "Renews" not in page


@pytest.mark.plans
def test_a_trial_shows_its_end(owner_client: Client, user: User) -> None:
    trial_end = timezone.now() + timedelta(days=10)
    subscribe(user, status="trialing", trial_end=trial_end)
    assert f"Trial ends on {trial_end:%Y-%m-%d}" in owner_client.get(INDEX).content.decode()


@pytest.mark.plans
def test_an_overdue_payment_says_when_cloud_training_stops_and_links_the_invoice(
    owner_client: Client, user: User, settings: SettingsWrapper
) -> None:
    since = timezone.now() - timedelta(days=2)
    subscription = subscribe(user, status="past_due", past_due_since=since)
    Invoice.objects.create(
        account=subscription.account,
        subscription=subscription,
        stripe_invoice_id="in_test_open",
        status="open",
        amount_due_cents=2000,
        hosted_invoice_url="https://invoice.stripe.com/i/open",
        stripe_created=since,
    )
    page = owner_client.get(INDEX).content.decode()
    grace_end = since + timedelta(days=settings.PLANS_PAST_DUE_GRACE_DAYS)
    assert f"Payment overdue: Cloud Training stops on {grace_end:%Y-%m-%d %H:%M} UTC" in page
    assert "https://invoice.stripe.com/i/open" in page


@pytest.mark.plans
def test_a_grant_says_so(owner_client: Client, user: User) -> None:
    until = timezone.now() + timedelta(days=30)
    PlanGrant.objects.create(account=Account.objects.get(user=user), plan=pro_plan(), until=until, reason="conference")
    page = owner_client.get(INDEX).content.decode()
    assert 'Your plan: <strong id="current-plan">Pro</strong>' in page
    assert f"(granted by staff until {until:%Y-%m-%d})" in page


def test_the_page_needs_a_login(client: Client, db: None) -> None:
    assert client.get(INDEX).status_code == 302


# -- upgrade -------------------------------------------------------------------------


def test_upgrade_is_refused_when_plans_are_off(owner_client: Client) -> None:
    pro_plan()
    response = owner_client.post(UPGRADE)
    assert response.status_code == 400
    assert "Plans are off" in response.content.decode()
    assert not CheckoutSession.objects.exists()


@pytest.mark.plans
@pytest.mark.parametrize("slug", ["free", "secret"])
def test_upgrade_to_a_free_or_hidden_plan_is_refused(owner_client: Client, slug: str) -> None:
    free_plan()
    Plan.objects.create(slug="secret", name="Secret", monthly_price_cents=9_900, is_public=False)
    response = owner_client.post(f"/plans/upgrade/{slug}/")
    assert response.status_code == 400
    assert "cannot be bought here" in response.content.decode()
    assert not CheckoutSession.objects.exists()


@pytest.mark.plans
def test_upgrade_to_an_unknown_plan_is_404(owner_client: Client) -> None:
    assert owner_client.post("/plans/upgrade/platinum/").status_code == 404


@pytest.mark.plans
def test_a_subscriber_is_sent_to_manage_instead(owner_client: Client, user: User) -> None:
    subscribe(user, status="past_due", past_due_since=timezone.now())
    response = owner_client.post(UPGRADE)
    assert response.status_code == 409
    assert "Manage or cancel" in response.content.decode()
    assert not CheckoutSession.objects.exists()


@pytest.mark.plans
def test_upgrade_says_so_when_stripe_is_unreachable_and_charges_nothing(
    owner_client: Client, settings: SettingsWrapper
) -> None:
    pro_plan()
    settings.STRIPE_SECRET_KEY = "sk_test_local_down"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    response = owner_client.post(UPGRADE)
    assert response.status_code == 503
    assert "nothing was charged" in response.content.decode()
    record = CheckoutSession.objects.get()
    assert (record.status, record.purpose, record.plan, record.amount_cents) == (
        "failed",
        "subscription",
        pro_plan(),
        2000,
    )


@pytest.mark.plans
def test_upgrade_rejects_get(owner_client: Client) -> None:
    pro_plan()
    assert owner_client.get(UPGRADE).status_code == 405


@pytest.mark.plans
@pytest.mark.parametrize("url", [UPGRADE, MANAGE])
def test_the_posts_need_a_csrf_token(user: User, url: str) -> None:
    pro_plan()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(url).status_code == 403
    assert not CheckoutSession.objects.exists()


# -- manage ---------------------------------------------------------------------------


@pytest.mark.plans
def test_manage_without_a_stripe_customer_is_refused(owner_client: Client) -> None:
    pro_plan()
    response = owner_client.post(MANAGE)
    assert response.status_code == 400
    assert "no subscription to manage" in response.content.decode()


@pytest.mark.plans
def test_manage_says_so_when_stripe_is_unreachable(owner_client: Client, user: User, settings: SettingsWrapper) -> None:
    subscribe(user)
    settings.STRIPE_SECRET_KEY = "sk_test_local_down"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    response = owner_client.post(MANAGE)
    assert response.status_code == 503
    assert "unavailable" in response.content.decode()


# -- back from Checkout ---------------------------------------------------------------------


def upgrade_record(user: User, **fields: object) -> CheckoutSession:
    return CheckoutSession.objects.create(
        account=Account.objects.get(user=user),
        purpose=CheckoutSession.Purpose.SUBSCRIPTION,
        plan=pro_plan(),
        amount_cents=2000,
        **fields,
    )


@pytest.mark.plans
def test_the_success_page_polls_until_the_subscription_is_live(owner_client: Client, user: User) -> None:
    record = upgrade_record(user, stripe_session_id="cs_test_1")
    url = f"/plans/upgrade/done/{record.pk}/"
    page = owner_client.get(url).content.decode()
    assert "Starting your Pro subscription" in page
    assert 'hx-trigger="every 1s"' in page
    CheckoutSession.objects.filter(pk=record.pk).update(status="complete", stripe_subscription_id="sub_test_1")
    assert "Starting your Pro" in owner_client.get(url, headers={"HX-Request": "true"}).content.decode()
    subscribe(user)
    response = owner_client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 286  # htmx: stop polling
    assert "You are on Pro" in response.content.decode()


@pytest.mark.plans
def test_the_success_page_of_an_expired_checkout_says_nothing_was_charged(owner_client: Client, user: User) -> None:
    record = upgrade_record(user, status="expired")
    page = owner_client.get(f"/plans/upgrade/done/{record.pk}/").content.decode()
    assert "Nothing was charged" in page
    assert "hx-trigger" not in page


@pytest.mark.plans
def test_outsiders_get_404_for_the_success_page(outsider_client: Client, user: User) -> None:
    record = upgrade_record(user)
    assert outsider_client.get(f"/plans/upgrade/done/{record.pk}/").status_code == 404


@pytest.mark.plans
def test_a_top_up_is_not_an_upgrade(owner_client: Client, user: User) -> None:
    record = CheckoutSession.objects.create(account=Account.objects.get(user=user), amount_cents=2000)
    assert owner_client.get(f"/plans/upgrade/done/{record.pk}/").status_code == 404


@pytest.mark.plans
def test_a_second_upgrade_click_goes_to_the_checkout_already_open(owner_client: Client, user: User) -> None:
    record = upgrade_record(
        user,
        stripe_session_id="cs_test_open",
        url="https://checkout.example/cs_test_open",
        expires_at=timezone.now() + timedelta(minutes=50),
    )
    response = owner_client.post(UPGRADE)
    assert (response.status_code, response["Location"]) == (303, record.url)
    htmx = owner_client.post(UPGRADE, headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == record.url
    assert CheckoutSession.objects.count() == 1


@pytest.mark.plans
def test_an_upgrade_being_opened_is_not_opened_twice(owner_client: Client, user: User) -> None:
    upgrade_record(user)  # committed, Stripe's session not created yet
    response = owner_client.post(UPGRADE)
    assert response.status_code == 409
    assert "being opened already" in response.content.decode()
    assert CheckoutSession.objects.count() == 1


@pytest.mark.plans
@pytest.mark.django_db(transaction=True)
def test_two_upgrade_clicks_at_once_open_one_checkout(user: User, settings: SettingsWrapper) -> None:
    pro_plan()
    settings.STRIPE_SECRET_KEY = "sk_test_local_down"  # the first click's Stripe call fails after our row commits
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    statuses: list[int] = []

    def click() -> None:
        client = Client()
        client.force_login(user)
        statuses.append(client.post(UPGRADE).status_code)

    assert not run_at_once([click, click])
    assert sorted(statuses) == [409, 503]
    assert CheckoutSession.objects.count() == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_the_navigation_links_the_plans_page_only_when_plans_apply(
    owner_client: Client, settings: SettingsWrapper, enabled: bool
) -> None:
    settings.PLANS_ENABLED = enabled
    page = owner_client.get("/", follow=True).content.decode()
    assert 'aria-label="Main"' in page
    assert (f'<a href="{INDEX}">Plans</a>' in page) is enabled
