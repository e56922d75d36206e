"""The billing pages: account page, statement CSV, a model's Billing tab and cost report."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from billing import services
from billing.models import Account, LedgerLine
from hubsite.models import User
from tests.factories import WORKER, fund, make_model, make_session, record_epoch
from training.models import TrainingSession

HTMX = {"HX-Request": "true"}


def read_csv(response: StreamingHttpResponse) -> list[dict[str, str]]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(text)))


# --- header and account page -----------------------------------------------------------


def test_the_header_shows_the_real_balance_and_links_to_billing(owner_client: Client, user: User) -> None:
    fund(user, 12_345_678)
    page = owner_client.get(reverse("training:home")).content.decode()
    assert "US$12.35" in page
    assert f'href="{reverse("billing:account")}">US$12.35' in page


def test_the_header_balance_costs_one_query(
    owner_client: Client, user: User, django_assert_num_queries: object
) -> None:
    from billing.context_processors import account_balance

    request = owner_client.get(reverse("training:home")).wsgi_request
    with django_assert_num_queries(1):  # type: ignore[operator]
        assert account_balance(request) == {"header_balance_display": "US$0.00"}


def test_the_account_page_shows_balance_holds_and_ledger(owner_client: Client, user: User) -> None:
    fund(user, 20_000_000)
    session = make_session(user)
    services.hold_epoch(session.pk, 1, worker_id=WORKER)
    services.capture_epoch(session.pk, 1, 1_500, worker_id=WORKER)
    services.hold_epoch(session.pk, 2, worker_id=WORKER)
    response = owner_client.get(reverse("billing:account"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "US$20.00" in page  # balance 19.9985 rounds to 20.00
    assert "-US$0.0015" in page  # the charge, to four decimals
    assert "US$19.9985" in page  # the running balance after it
    assert f"#{session.pk}" in page  # the open hold of epoch 2
    assert 'id="topup"' in page


def test_the_ledger_is_paginated_and_htmx_gets_only_the_ledger(
    owner_client: Client, user: User, settings: object
) -> None:
    settings.BILLING_LEDGER_PAGE_SIZE = 2  # type: ignore[attr-defined]
    account = services.account_for(user)
    for n in range(5):
        services.credit_top_up(account.pk, 1_000_000 * (n + 1), reference=f"cs_page_{n}")
    full = owner_client.get(reverse("billing:account")).content.decode()
    assert "Page 1 of 3" in full
    assert "cs_page_4" in full  # newest first
    assert "cs_page_0" not in full
    fragment = owner_client.get(reverse("billing:account"), {"page": 3}, headers=HTMX).content.decode()
    assert fragment.lstrip().startswith('<div id="ledger">')
    assert "<html" not in fragment
    assert "cs_page_0" in fragment
    assert "cs_page_4" not in fragment


def test_the_account_page_refuses_post(owner_client: Client) -> None:
    assert owner_client.post(reverse("billing:account")).status_code == 405


def test_an_outsider_sees_only_their_own_ledger(outsider_client: Client, user: User) -> None:
    fund(user, 7_000_000, reference="cs_owner_only")
    page = outsider_client.get(reverse("billing:account")).content.decode()
    assert "cs_owner_only" not in page
    assert "No money has moved yet." in page


def test_billing_pages_need_a_login(client: Client, db: None) -> None:
    response = client.get(reverse("billing:account"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- statement CSV -----------------------------------------------------------------------


def test_the_statement_lists_the_lines_of_the_date_range(owner_client: Client, user: User) -> None:
    account = services.account_for(user)
    for day, reference in [(1, "cs_before"), (10, "cs_first"), (20, "cs_last"), (21, "cs_after")]:
        with time_machine.travel(dt.datetime(2026, 3, day, 23, 59, tzinfo=dt.UTC), tick=False):
            services.credit_top_up(account.pk, 1_000_000, reference=reference)
    response = owner_client.get(reverse("billing:statement"), {"start": "2026-03-10", "end": "2026-03-20"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)  # type: ignore[arg-type]
    assert [row["reference"] for row in rows] == ["cs_first", "cs_last"]
    assert rows[0] == {
        "timestamp_utc": "2026-03-10T23:59:00.000000Z",
        "kind": "top_up",
        "amount_usd": "1.000000",
        "balance_after_usd": "2.000000",
        "session": "",
        "epoch": "",
        "reference": "cs_first",
        "reason": "",
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "must not be before"),
        ({"start": "not a date", "end": "2026-03-01"}, "Enter a valid date"),
        ({}, "This field is required"),
    ],
)
def test_a_bad_statement_range_is_explained(owner_client: Client, query: dict[str, str], message: str) -> None:
    response = owner_client.get(reverse("billing:statement"), query)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_statement_refuses_post(owner_client: Client) -> None:
    assert owner_client.post(reverse("billing:statement")).status_code == 405


def test_a_statement_never_includes_other_peoples_lines(outsider_client: Client, user: User) -> None:
    fund(user, 1_000_000, reference="cs_owner_only")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    rows = read_csv(outsider_client.get(reverse("billing:statement"), {"start": today, "end": today}))  # type: ignore[arg-type]
    assert rows == []


# --- a model's Billing tab and cost report -------------------------------------------------


@pytest.fixture
def trained_model_sessions(user: User) -> list[TrainingSession]:
    """An Epochs session with three charged epochs (one written off in part) and a
    Timed session with a prepayment, two epochs and a refund."""
    fund(user, 30_000)
    model = make_model(user)
    epochs = make_session(user, model=model)
    for epoch, ms in [(1, 10_000), (2, 12_345), (3, 9_000)]:
        record_epoch(epochs, epoch, ms)
        services.capture_epoch(epochs.pk, epoch, ms, worker_id=WORKER)
    TrainingSession.objects.filter(pk=epochs.pk).update(status=TrainingSession.Status.STOPPED)
    epochs.refresh_from_db()
    fund(user, 10_000_000)
    timed = make_session(
        user,
        model=model,
        mode=TrainingSession.Mode.TIMED,
        time_budget_seconds=3600,
        status=TrainingSession.Status.COMPLETED,
    )
    services.prepay_timed(timed)
    record_epoch(timed, 4, 20_000)
    record_epoch(timed, 5, 21_000)
    services.refund_timed(timed.pk, 45)
    return [epochs, timed]


def test_the_billing_tab_shows_one_row_per_session_and_the_total(
    owner_client: Client, trained_model_sessions: list[TrainingSession]
) -> None:
    epochs, timed = trained_model_sessions
    response = owner_client.get(reverse("billing:model_billing", args=[epochs.model_id]))
    assert response.status_code == 200
    billing = response.context["billing"]
    assert [(row.session, row.epochs, row.runtime_ms, row.price_micros) for row in billing.sessions] == [
        (timed, 2, 41_000, 45_000),
        (epochs, 3, 31_345, 31_345 - 1_345),  # 1_345 written off: the balance ran dry
    ]
    assert billing.total_micros == 45_000 + 30_000
    page = response.content.decode()
    assert "US$0.0750" in page
    assert reverse("billing:model_cost_report", args=[epochs.model_id]) in page


def test_the_billing_tab_is_a_fragment_for_htmx(
    owner_client: Client, trained_model_sessions: list[TrainingSession]
) -> None:
    model_id = trained_model_sessions[0].model_id
    fragment = owner_client.get(reverse("billing:model_billing", args=[model_id]), headers=HTMX).content.decode()
    assert 'id="model-billing"' in fragment
    assert "<html" not in fragment


def test_the_billing_tab_renders_from_the_template_tag(trained_model_sessions: list[TrainingSession]) -> None:
    model = trained_model_sessions[0].model
    html = Template("{% load billing_tags %}{% model_billing model %}").render(Context({"model": model}))
    assert 'id="model-billing-total">US$0.0750<' in html


def test_a_model_that_never_trained_cost_nothing(owner_client: Client, user: User) -> None:
    model = make_model(user)
    response = owner_client.get(reverse("billing:model_billing", args=[model.pk]))
    assert response.context["billing"].total_micros == 0
    assert "has cost nothing" in response.content.decode()


@pytest.mark.parametrize("name", ["billing:model_billing", "billing:model_cost_report"])
def test_other_peoples_model_billing_is_not_found(
    outsider_client: Client, trained_model_sessions: list[TrainingSession], name: str
) -> None:
    assert outsider_client.get(reverse(name, args=[trained_model_sessions[0].model_id])).status_code == 404
    assert outsider_client.get(reverse(name, args=[999_999])).status_code == 404


@pytest.mark.parametrize("name", ["billing:model_billing", "billing:model_cost_report"])
def test_model_billing_refuses_post(
    owner_client: Client, trained_model_sessions: list[TrainingSession], name: str
) -> None:
    assert owner_client.post(reverse(name, args=[trained_model_sessions[0].model_id])).status_code == 405


def test_the_cost_report_equals_the_ledger_to_the_last_micro_dollar(
    owner_client: Client, trained_model_sessions: list[TrainingSession]
) -> None:
    epochs, timed = trained_model_sessions
    response = owner_client.get(reverse("billing:model_cost_report", args=[epochs.model_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = read_csv(response)  # type: ignore[arg-type]
    lines = list(LedgerLine.objects.filter(session__model_id=epochs.model_id).order_by("created_at", "id"))
    ledger_rows = [row for row in rows if row["kind"] != "prepaid_epoch"]
    assert [(row["kind"], row["session"], row["epoch"]) for row in ledger_rows] == [
        (line.kind, str(line.session_id), "" if line.epoch is None else str(line.epoch)) for line in lines
    ]
    for row, line in zip(ledger_rows, lines, strict=True):
        assert Decimal(row["amount_usd"]) * 1_000_000 == -line.amount_micros
        assert Decimal(row["balance_after_usd"]) * 1_000_000 == line.balance_after_micros
    total = sum(Decimal(row["amount_usd"]) for row in rows)
    assert total == Decimal("0.075000")
    charge = next(row for row in rows if row["kind"] == "epoch_charge" and row["epoch"] == "2")
    assert (charge["seconds"], charge["rate_per_hour_usd"], charge["amount_usd"]) == ("12.345", "3.600000", "0.012345")
    prepaid = [row for row in rows if row["kind"] == "prepaid_epoch"]
    assert [(row["session"], row["epoch"], row["amount_usd"]) for row in prepaid] == [
        (str(timed.pk), "4", "0.000000"),
        (str(timed.pk), "5", "0.000000"),
    ]
    assert set(rows[0]) >= {"timestamp_utc", "session", "epoch", "instance", "rate_per_hour_usd", "seconds"}


def test_the_demo_seed_credits_twenty_dollars_once(db: None) -> None:
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    user = User.objects.get(email="demo@hubsite.local")
    lines = LedgerLine.objects.filter(account__user=user)
    assert [(line.kind, line.amount_micros, line.reason) for line in lines] == [
        (LedgerLine.Kind.ADJUSTMENT, 20_000_000, "demo credit")
    ]
    assert Account.objects.get(user=user).balance_micros == 20_000_000
