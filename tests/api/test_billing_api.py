"""Balance and ledger through the API: the Billing page's numbers, the billing scope,
each account's own lines only."""

from __future__ import annotations

import pytest
from django.test import Client

from billing import services
from billing.models import LedgerLine
from billing.money import format_usd
from hubsite.models import User
from tests.api.conftest import KeyClient, key_client
from tests.factories import WORKER, fund, make_session

pytestmark = pytest.mark.django_db


def _top_up_and_train(user: User) -> LedgerLine:
    """A US$20 top-up, one charged epoch, and a second epoch still held."""
    fund(user, 20_000_000)
    session = make_session(user)
    services.hold_epoch(session.pk, 1, worker_id=WORKER)
    charge = services.capture_epoch(session.pk, 1, 7_500, worker_id=WORKER)
    assert charge is not None
    services.hold_epoch(session.pk, 2, worker_id=WORKER)
    return charge


def test_the_balance_is_what_the_billing_page_shows(api_client: KeyClient, owner_client: Client, user: User) -> None:
    _top_up_and_train(user)
    account = services.account_for(user)
    assert account.held_micros > 0  # the second epoch's hold

    response = api_client.get("/api/v1/billing/balance")

    assert response.status_code == 200
    assert response.json() == {
        "balance_micros": account.balance_micros,
        "held_micros": account.held_micros,
        "available_micros": account.available_micros,
        "balance": format_usd(account.balance_micros),
        "held": format_usd(account.held_micros),
        "available": format_usd(account.available_micros),
    }
    assert account.balance_micros == 20_000_000 - 7_500
    page = owner_client.get("/billing/").content.decode()
    assert format_usd(account.balance_micros) in page
    assert format_usd(account.available_micros) in page


def test_the_ledger_lists_the_account_lines_newest_first_with_their_session_and_model(
    api_client: KeyClient, user: User, outsider: User
) -> None:
    charge = _top_up_and_train(user)
    fund(outsider, 5_000_000)

    response = api_client.get("/api/v1/billing/ledger")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    newest, oldest = body["items"]
    assert newest["id"] == charge.pk
    assert newest["kind"] == "epoch_charge"
    assert newest["description"] == "Epoch charge"
    assert newest["amount_micros"] == -7_500
    assert newest["balance_after_micros"] == 20_000_000 - 7_500
    assert newest["session_id"] == charge.session_id
    assert charge.session is not None
    assert newest["model_id"] == charge.session.model_id
    assert newest["epoch"] == 1
    assert (oldest["kind"], oldest["amount_micros"], oldest["session_id"], oldest["model_id"]) == (
        "top_up",
        20_000_000,
        None,
        None,
    )


def test_the_ledger_is_paginated_with_limit_and_offset(api_client: KeyClient, user: User) -> None:
    for _ in range(3):
        fund(user, 1_000_000)
    first = api_client.get("/api/v1/billing/ledger?limit=2").json()
    rest = api_client.get("/api/v1/billing/ledger?limit=2&offset=2").json()
    assert first["count"] == rest["count"] == 3
    balances = [line["balance_after_micros"] for line in first["items"] + rest["items"]]
    assert balances == [3_000_000, 2_000_000, 1_000_000]


def test_bad_pagination_is_a_json_422(api_client: KeyClient) -> None:
    response = api_client.get("/api/v1/billing/ledger?limit=0")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("path", ["/api/v1/billing/balance", "/api/v1/billing/ledger"])
def test_billing_needs_the_billing_scope(user: User, path: str) -> None:
    response = key_client(user, "read", "train").get(path)
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"
    assert key_client(user, "billing").get(path).status_code == 200


def test_another_account_sees_none_of_it(outsider_api_client: KeyClient, user: User) -> None:
    _top_up_and_train(user)
    assert outsider_api_client.get("/api/v1/billing/ledger").json() == {"items": [], "count": 0}
    assert outsider_api_client.get("/api/v1/billing/balance").json()["balance_micros"] == 0
