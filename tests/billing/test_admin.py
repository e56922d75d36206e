"""The billing admin: balances read-only, ledger untouchable, adjustments with a reason."""

from __future__ import annotations

import re
from functools import partial

import pytest
from django.contrib.auth.models import Permission
from django.db.models import F
from django.test import Client
from django.urls import reverse

from billing.invariants import check_ledger
from billing.models import Account, LedgerLine, LedgerViolation
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent, run_at_once
from tests.factories import PASSWORD, fund


@pytest.fixture
def account(user: User) -> Account:
    return fund(user, 5_000_000, reference="cs_admin")


def adjust_url(account: Account) -> str:
    return reverse("admin:billing_account_adjust", args=[account.pk])


def adjust_form(client: Client, account: Account, amount: str, reason: str) -> dict[str, str]:
    """What the rendered form posts: its hidden inputs (but the CSRF token, which the
    test client skips) plus the amount and reason a person types in."""
    page = client.get(adjust_url(account)).content.decode()
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    hidden.pop("csrfmiddlewaretoken", None)
    return {**hidden, "amount": amount, "reason": reason}


def test_staff_adjust_a_balance_with_a_reason(staff_client: Client, staff: User, account: Account) -> None:
    response = staff_client.post(
        adjust_url(account), adjust_form(staff_client, account, "-1.25", "refund of a failed run")
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_account_change", args=[account.pk])
    line = LedgerLine.objects.get(kind=LedgerLine.Kind.ADJUSTMENT)
    assert (line.amount_micros, line.created_by, line.reason, line.balance_after_micros) == (
        -1_250_000,
        staff,
        "refund of a failed run",
        3_750_000,
    )
    account.refresh_from_db()
    assert account.balance_micros == 3_750_000


def test_the_adjust_form_shows_the_current_balance(staff_client: Client, account: Account) -> None:
    page = staff_client.get(adjust_url(account)).content.decode()
    assert "US$5.000000" in page
    assert 'name="reason"' in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "0", "reason": "x"}, "other than zero"),
        ({"amount": "abc", "reason": "x"}, "Enter a number"),
        ({"amount": "1.0000001", "reason": "x"}, "decimal places"),
        ({"amount": "1", "reason": "   "}, "This field is required"),
        ({"amount": "100000.01", "reason": "x"}, "at most"),
    ],
)
def test_a_bad_adjustment_is_explained_and_changes_nothing(
    staff_client: Client, account: Account, data: dict[str, str], message: str
) -> None:
    response = staff_client.post(adjust_url(account), {**adjust_form(staff_client, account, "", ""), **data})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).exists()
    account.refresh_from_db()
    assert account.balance_micros == 5_000_000


def test_the_adjust_action_leads_to_the_form_for_one_account(staff_client: Client, account: Account) -> None:
    changelist = reverse("admin:billing_account_changelist")
    response = staff_client.post(changelist, {"action": "adjust_balance", "_selected_action": [account.pk]})
    assert response.status_code == 302
    assert response["Location"] == adjust_url(account)


def test_the_adjust_action_refuses_several_accounts(staff_client: Client, account: Account, outsider: User) -> None:
    changelist = reverse("admin:billing_account_changelist")
    other = Account.objects.get(user=outsider)
    response = staff_client.post(
        changelist, {"action": "adjust_balance", "_selected_action": [account.pk, other.pk]}, follow=True
    )
    assert "Select exactly one account" in response.content.decode()


def test_the_balance_cannot_be_edited_in_the_admin(staff_client: Client, account: Account) -> None:
    change = reverse("admin:billing_account_change", args=[account.pk])
    page = staff_client.get(change).content.decode()
    assert 'name="balance_micros"' not in page
    assert "cs_admin" in page  # the ledger inline
    staff_client.post(
        change,
        {
            "balance_micros": "999000000",
            "concurrent_session_limit": "2",
            "ledger_lines-TOTAL_FORMS": "0",
            "ledger_lines-INITIAL_FORMS": "0",
        },
    )
    account.refresh_from_db()
    assert (account.balance_micros, account.concurrent_session_limit) == (5_000_000, 2)


def test_ledger_lines_cannot_be_added_changed_or_deleted(staff_client: Client, account: Account) -> None:
    line = LedgerLine.objects.get()
    assert staff_client.get(reverse("admin:billing_ledgerline_add")).status_code == 403
    assert staff_client.get(reverse("admin:billing_ledgerline_delete", args=[line.pk])).status_code == 403
    staff_client.post(reverse("admin:billing_ledgerline_change", args=[line.pk]), {"amount_micros": "1"})
    line.refresh_from_db()
    assert line.amount_micros == 5_000_000
    view = staff_client.get(reverse("admin:billing_ledgerline_change", args=[line.pk])).content.decode()
    assert 'name="amount_micros"' not in view
    assert staff_client.get(reverse("admin:billing_account_delete", args=[account.pk])).status_code == 403


def test_only_staff_reach_the_billing_admin(owner_client: Client, account: Account) -> None:
    for url in [reverse("admin:billing_account_changelist"), adjust_url(account)]:
        response = owner_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    owner_client.post(adjust_url(account), {"amount": "100", "reason": "free money"})
    assert not LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).exists()


def test_staff_without_the_change_permission_cannot_adjust(account: Account) -> None:
    viewer = User.objects.create_user("viewer@example.com", PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("admin:billing_account_change", args=[account.pk])).status_code == 200
    assert client.post(adjust_url(account), {"amount": "100", "reason": "x"}).status_code == 403
    assert not LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).exists()


def test_the_same_adjust_form_submitted_twice_appends_one_line(staff_client: Client, account: Account) -> None:
    data = adjust_form(staff_client, account, "2.50", "goodwill for a slow queue")
    first = staff_client.post(adjust_url(account), data)
    second = staff_client.post(adjust_url(account), data, follow=True)  # a double click, or a reload of the POST
    assert first.status_code == 302
    assert LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).count() == 1
    account.refresh_from_db()
    assert account.balance_micros == 7_500_000
    assert "already submitted" in second.content.decode()


def test_each_rendering_of_the_adjust_form_is_a_new_adjustment(staff_client: Client, account: Account) -> None:
    for _ in range(2):
        staff_client.post(adjust_url(account), adjust_form(staff_client, account, "1", "two separate credits"))
    assert LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).count() == 2
    account.refresh_from_db()
    assert account.balance_micros == 7_000_000


def test_an_adjust_form_without_its_token_is_refused(staff_client: Client, account: Account) -> None:
    response = staff_client.post(adjust_url(account), {"amount": "1", "reason": "no token", "token": "forged"})
    assert response.status_code == 200
    assert "open Adjust balance again" in response.content.decode()
    assert not LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).exists()


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_double_submit_appends_one_line(staff: User, user: User) -> None:
    account = fund(user, 5_000_000)
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(staff)
    data = adjust_form(clients[0], account, "-4", "reversal of a duplicate top-up")
    responses: list[int] = []

    def submit(client: Client) -> None:
        responses.append(client.post(adjust_url(account), data).status_code)

    assert run_at_once([partial(submit, client) for client in clients]) == []
    assert responses == [302, 302]
    assert LedgerLine.objects.filter(kind=LedgerLine.Kind.ADJUSTMENT).count() == 1
    account.refresh_from_db()
    assert account.balance_micros == 1_000_000
    assert_ledger_consistent(account)


# -- the ledger check's findings ---------------------------------------------------------


@pytest.fixture
def broken_account(account: Account) -> Account:
    Account.objects.filter(pk=account.pk).update(held_micros=F("held_micros") + 1)
    assert len(check_ledger()) == 1
    return account


def test_staff_see_the_violations_on_the_accounts_list(staff_client: Client, broken_account: Account) -> None:
    page = staff_client.get(reverse("admin:billing_account_changelist")).content.decode()
    assert "The last ledger check found 1 violation on 1 account." in page
    assert "1 violation</a>" in page


def test_staff_see_the_violation_on_the_account(staff_client: Client, broken_account: Account) -> None:
    page = staff_client.get(reverse("admin:billing_account_change", args=[broken_account.pk])).content.decode()
    assert "held US$0.000001 but its open holds sum to US$0.000000" in page
    assert 'class="error"' in page


def test_a_consistent_account_shows_no_warning(staff_client: Client, account: Account) -> None:
    check_ledger()
    for url in [
        reverse("admin:billing_account_changelist"),
        reverse("admin:billing_account_change", args=[account.pk]),
    ]:
        response = staff_client.get(url)
        assert [str(message) for message in response.context["messages"]] == []


def test_the_ledger_violations_are_listed_read_only(staff_client: Client, broken_account: Account) -> None:
    violation = LedgerViolation.objects.get()
    page = staff_client.get(reverse("admin:billing_ledgerviolation_changelist")).content.decode()
    assert "held = sum of its open holds" in page
    assert staff_client.get(reverse("admin:billing_ledgerviolation_add")).status_code == 403
    assert staff_client.get(reverse("admin:billing_ledgerviolation_delete", args=[violation.pk])).status_code == 403
    staff_client.post(reverse("admin:billing_ledgerviolation_change", args=[violation.pk]), {"detail": "fine"})
    violation.refresh_from_db()
    assert violation.detail.startswith("held")
