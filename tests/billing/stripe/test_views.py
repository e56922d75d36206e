"""The top-up, Checkout return and Pay Now pages: happy path, wrong method, outsider, htmx."""

from __future__ import annotations

import pytest
import redis
from django.test import Client
from pytest_django.fixtures import Settings

from billing.models import Account, CheckoutSession, LedgerLine
from hubsite.models import User
from tests.billing.stripe.emulator import Emulator
from tests.factories import make_instance_type, make_model
from training.presence import announce

TOP_UP = "/billing/stripe/top-up/"


def make_record(user: User, status: str = "open") -> CheckoutSession:
    return CheckoutSession.objects.create(
        account=Account.objects.get(user=user), amount_cents=2_000, stripe_session_id=f"cs_test_{status}", status=status
    )


def test_the_top_up_page_offers_presets_and_a_custom_amount(owner_client: Client) -> None:
    page = owner_client.get(TOP_UP)
    assert page.status_code == 200
    text = page.content.decode()
    for label in ("US$10.00", "US$20.00", "US$50.00", "US$100.00", "US$5.00 to US$1,000.00"):
        assert label in text


def test_the_top_up_page_needs_a_login(client: Client, db: None) -> None:
    response = client.get(TOP_UP)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_top_up_page_rejects_put(owner_client: Client) -> None:
    assert owner_client.put(TOP_UP).status_code == 405


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"custom": "4.99"}, "from US$5.00 to US$1,000.00"),
        ({"custom": "1000.01"}, "from US$5.00 to US$1,000.00"),
        ({"custom": "12.345"}, "dollars and cents"),
        ({"custom": "lots"}, "like 25 or 12.50"),
        ({"preset": "700"}, "one of the amounts offered"),
        ({}, "Choose an amount"),
    ],
)
def test_it_refuses_a_bad_amount_and_opens_nothing(owner_client: Client, data: dict[str, str], message: str) -> None:
    response = owner_client.post(TOP_UP, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not CheckoutSession.objects.exists()


def test_a_custom_amount_opens_a_checkout_for_it(owner_client: Client, stripe_emulator: Emulator) -> None:
    response = owner_client.post(TOP_UP, {"custom": "$1,000"})
    assert response.status_code == 303
    record = CheckoutSession.objects.get()
    assert record.amount_cents == 100_000
    assert response["Location"] == record.url


def test_htmx_is_sent_to_stripe_with_a_client_redirect(owner_client: Client, stripe_emulator: Emulator) -> None:
    response = owner_client.post(TOP_UP, {"custom": "25.50"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"] == CheckoutSession.objects.get().url


def test_it_says_so_when_stripe_is_unreachable_and_charges_nothing(owner_client: Client, settings: Settings) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_local_down"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    response = owner_client.post(TOP_UP, {"preset": "1000"})
    assert response.status_code == 503
    assert "nothing was charged" in response.content.decode()
    assert CheckoutSession.objects.get().status == "failed"
    assert not LedgerLine.objects.exists()


def test_the_success_page_says_crediting_until_the_credit_lands(owner_client: Client, user: User) -> None:
    record = make_record(user)
    url = f"/billing/stripe/checkout/{record.pk}/success/"
    page = owner_client.get(url)
    assert page.status_code == 200
    assert "Payment received, crediting US$20.00" in page.content.decode()
    assert 'hx-trigger="every 1s"' in page.content.decode()
    fragment = owner_client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert 'hx-trigger="every 1s"' in fragment.content.decode()


def test_the_success_fragment_stops_polling_once_credited(owner_client: Client, user: User) -> None:
    record = make_record(user, status="complete")
    fragment = owner_client.get(f"/billing/stripe/checkout/{record.pk}/success/", headers={"HX-Request": "true"})
    assert fragment.status_code == 286
    assert "US$20.00 credited" in fragment.content.decode()
    assert "every 1s" not in fragment.content.decode()


def test_the_success_page_of_an_expired_checkout_says_nothing_was_charged(owner_client: Client, user: User) -> None:
    record = make_record(user, status="expired")
    page = owner_client.get(f"/billing/stripe/checkout/{record.pk}/success/")
    assert "Nothing was charged" in page.content.decode()


def test_the_success_page_rejects_post(owner_client: Client, user: User) -> None:
    record = make_record(user)
    assert owner_client.post(f"/billing/stripe/checkout/{record.pk}/success/").status_code == 405


def test_outsiders_get_404_for_checkout_pages(outsider_client: Client, user: User) -> None:
    record = make_record(user)
    assert outsider_client.get(f"/billing/stripe/checkout/{record.pk}/success/").status_code == 404
    assert (
        outsider_client.get(
            f"/billing/stripe/checkout/{record.pk}/success/", headers={"HX-Request": "true"}
        ).status_code
        == 404
    )
    assert outsider_client.get(f"/billing/stripe/checkout/{record.pk}/cancel/").status_code == 404


def test_the_cancel_page_changes_nothing(owner_client: Client, user: User) -> None:
    record = make_record(user)
    page = owner_client.get(f"/billing/stripe/checkout/{record.pk}/cancel/")
    assert page.status_code == 200
    assert "Nothing was charged" in page.content.decode()
    record.refresh_from_db()
    assert record.status == "open"
    assert owner_client.post(f"/billing/stripe/checkout/{record.pk}/cancel/").status_code == 405


def test_the_pay_now_page_shows_a_form_to_the_owner_only(
    owner_client: Client, outsider_client: Client, user: User
) -> None:
    model = make_model(user)
    assert owner_client.get(f"/models/{model.uid}/train/pay-now/").status_code == 200
    assert outsider_client.get(f"/models/{model.uid}/train/pay-now/").status_code == 404
    assert outsider_client.post(f"/models/{model.uid}/train/pay-now/", {"hours": "1"}).status_code == 404
    assert owner_client.put(f"/models/{model.uid}/train/pay-now/").status_code == 405
    assert not CheckoutSession.objects.exists()


def test_pay_now_refuses_bad_hours(owner_client: Client, user: User) -> None:
    model = make_model(user)
    instance_type = make_instance_type()
    response = owner_client.post(
        f"/models/{model.uid}/train/pay-now/", {"instance_type": instance_type.slug, "hours": "0.3"}
    )
    assert response.status_code == 400
    assert "quarter hours" in response.content.decode()
    assert not CheckoutSession.objects.exists()


def test_pay_now_refuses_a_price_below_stripes_minimum(
    owner_client: Client, user: User, redis_client: redis.Redis
) -> None:
    model = make_model(user)
    instance_type = make_instance_type(price_per_hour_micros=1_000_000)  # US$1/h: 15 minutes cost 25 cents
    announce({instance_type.queue_name}, "test-worker")
    response = owner_client.post(
        f"/models/{model.uid}/train/pay-now/", {"instance_type": instance_type.slug, "hours": "0.25"}
    )
    assert response.status_code == 400
    assert "smallest card payment" in response.content.decode()
    assert not CheckoutSession.objects.exists()


def test_pay_now_refuses_an_instance_type_with_no_worker(owner_client: Client, user: User) -> None:
    model = make_model(user)
    instance_type = make_instance_type()
    response = owner_client.post(
        f"/models/{model.uid}/train/pay-now/", {"instance_type": instance_type.slug, "hours": "1"}
    )
    assert response.status_code == 400
    assert "worker is online" in response.content.decode()
    assert not CheckoutSession.objects.exists()
