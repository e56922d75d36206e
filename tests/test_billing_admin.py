"""The billing admin: balances read-only, ledger untouchable, adjustments with a reason."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from billing.models import Account, LedgerLine
from hubsite.models import User
from tests.billing_fixtures import fund
from tests.conftest import PASSWORD


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_superuser("staff@example.com", PASSWORD)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def account(user: User) -> Account:
    return fund(user, 5_000_000, reference="cs_admin")


def adjust_url(account: Account) -> str:
    return reverse("admin:billing_account_adjust", args=[account.pk])


def test_staff_adjust_a_balance_with_a_reason(staff_client: Client, staff: User, account: Account) -> None:
    response = staff_client.post(adjust_url(account), {"amount": "-1.25", "reason": "refund of a failed run"})
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
    response = staff_client.post(adjust_url(account), data)
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
