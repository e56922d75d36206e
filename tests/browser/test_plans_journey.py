"""Plans in a real Chromium: a Free user's Train step refuses Cloud Training and says
why, the user upgrades to Pro through Stripe Checkout (the local emulator's stand-in
page, webhooks signed and delivered to the live server), and then trains.

Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pytest_django.live_server_helper import LiveServer

from billing.models import Invoice, Subscription
from hubsite.models import User
from tests.billing.stripe.emulator import Emulator
from tests.browser.chromium import PHONE, browser_marks, log_in, shot, shot_on_phone
from tests.factories import ensure_instance_types, fund, make_model, make_ready_dataset
from tests.helpers import FAST_WORKER_ENV, WorkerFactory, wait_for
from tests.plan_fixtures import ensure_plans
from training.models import TrainingSession
from training.presence import live_queues

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [*browser_marks, pytest.mark.training, pytest.mark.plans]


def test_a_free_user_is_refused_with_the_reason_upgrades_to_pro_and_trains(
    page: Page,
    live_server: LiveServer,
    stripe_live: Emulator,
    start_worker: WorkerFactory,
    user: User,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    ensure_plans()
    ensure_instance_types()
    start_worker("default", "train.cpu", extra_env=FAST_WORKER_ENV)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=30)
    fund(user)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=1)
    log_in(page, live_server, user)
    train_url = f"{live_server.url}/models/{model.uid}/train/"

    # Free: the Train step says why Cloud Training is refused, and Start is disabled.
    page.goto(train_url)
    refusal = page.locator(".plan-refusal")
    expect(refusal).to_contain_text("Cloud Training needs Pro: your plan is Free.")
    start = page.locator("button:has-text('Start Training')")
    expect(start).to_be_disabled()
    shot(page, "plans-01-free-refused")
    shot_on_phone(page, "plans-01-free-refused-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Even a Start forced past the disabled button is refused by the server, with the reason.
    page.evaluate("document.querySelector('.start-button').disabled = false")
    start.click()
    expect(page.locator(".blockers").first).to_contain_text("Cloud Training needs Pro")
    assert not TrainingSession.objects.filter(model=model).exists()

    # Upgrade: the Plans page, then Stripe Checkout in subscription mode.
    page.goto(train_url)
    refusal.get_by_role("link", name="Upgrade").click()
    page.wait_for_url("**/plans/")
    expect(page.locator("#current-plan")).to_have_text("Free")
    shot(page, "plans-02-plans-page")
    page.get_by_role("button", name="Upgrade to Pro").click()
    expect(page.locator(".amount")).to_have_text("US$20.00")
    page.fill("input[name=card_number]", "4242 4242 4242 4242")
    shot(page, "plans-03-stripe-checkout")
    page.click("button:has-text('Pay')")
    expect(page.get_by_text("You are on Pro.")).to_be_visible(timeout=30_000)
    shot(page, "plans-04-on-pro")
    subscription = Subscription.objects.get(account__user=user)
    assert (subscription.plan.slug, subscription.status) == ("pro", Subscription.Status.ACTIVE)

    # Pro: the same Train step now starts, and the session trains to the end.
    page.goto(train_url)
    expect(page.locator(".plan-allowance")).to_contain_text("Plan: Pro (subscription)")
    expect(page.locator(".plan-refusal")).to_have_count(0)
    expect(start).to_be_enabled()
    start.click()
    expect(page.locator(".session-status")).to_contain_text("Completed: 1 epoch.", timeout=240_000)
    shot(page, "plans-05-trained")
    session = TrainingSession.objects.get(model=model)
    assert session.status == TrainingSession.Status.COMPLETED

    # The Billing page lists the subscription's invoice with its link.
    wait_for(lambda: Invoice.objects.filter(account__user=user, status="paid").exists(), timeout=30)
    page.goto(f"{live_server.url}/billing/")
    invoice = Invoice.objects.get(account__user=user)
    expect(page.locator(f"a[href='{invoice.hosted_invoice_url}']")).to_be_visible()
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the Billing page scrolls sideways by {overflow} px on a phone"
    shot_on_phone(page, "plans-06-billing-receipts-phone")
