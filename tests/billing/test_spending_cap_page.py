"""The Billing page's monthly spending cap (issue 16): this month's spend against it, set
and cleared by a POST with CSRF (htmx swaps only its card), bad input changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Account
from hubsite.models import User
from tests.billing.helpers import set_monthly_cap, spend_this_month
from tests.factories import fund

HTMX = {"HX-Request": "true"}


def text(response: Any) -> str:
    return " ".join(response.content.decode().split())


def test_the_billing_page_shows_the_months_spend_against_the_cap(owner_client: Client, user: User) -> None:
    fund(user)
    spend_this_month(user, 1_250_000)
    set_monthly_cap(user, 10_000_000)

    page = text(owner_client.get(reverse("billing:account")))

    assert "Monthly spending cap" in page
    assert '<strong id="month-spend">US$1.25</strong> spent on training of your <strong>US$10.00</strong> cap' in page
    assert 'value="10.00"' in page


def test_the_monthly_cap_is_set_and_cleared_by_htmx(owner_client: Client, user: User) -> None:
    fund(user)
    url = reverse("billing:monthly_spending_cap")

    saved = owner_client.post(url, {"cap": "12.50"}, headers=HTMX)

    assert saved.status_code == 200
    assert "Monthly spending cap set to US$12.50." in text(saved)
    assert 'id="spending-cap"' in text(saved)
    assert "<h1>" not in text(saved)  # only the card
    assert Account.objects.get(user=user).monthly_spending_cap_micros == 12_500_000
    cleared = owner_client.post(url, {"cap": ""})
    assert cleared.status_code == 302
    assert Account.objects.get(user=user).monthly_spending_cap_micros is None


@pytest.mark.parametrize("typed", ["0", "0.001", "abc", "100000.5"])
def test_a_bad_monthly_cap_changes_nothing(owner_client: Client, user: User, typed: str) -> None:
    fund(user)
    set_monthly_cap(user, 3_000_000)

    response = owner_client.post(reverse("billing:monthly_spending_cap"), {"cap": typed}, headers=HTMX)

    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert Account.objects.get(user=user).monthly_spending_cap_micros == 3_000_000


def test_the_monthly_cap_form_needs_the_csrf_token(user: User) -> None:
    fund(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(reverse("billing:monthly_spending_cap"), {"cap": "5"}, headers=HTMX)

    assert response.status_code == 403
    assert Account.objects.get(user=user).monthly_spending_cap_micros is None


def test_the_monthly_cap_url_takes_only_posts(owner_client: Client) -> None:
    assert owner_client.get(reverse("billing:monthly_spending_cap")).status_code == 405
