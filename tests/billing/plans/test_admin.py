"""Plans in the admin: editable plans, read-only subscriptions, invoices and grants, and
"Grant plan", which appends an audited PlanGrant (staff with the change permission only)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Account, PlanGrant
from billing.plans.standing import standing_of
from hubsite.models import User
from tests.billing.subscription_helpers import pro_plan
from tests.factories import PASSWORD


def grant_url(account: Account) -> str:
    return reverse("admin:billing_account_grant_plan", args=[account.pk])


@pytest.fixture
def account(user: User) -> Account:
    pro_plan()
    return Account.objects.get(user=user)


@pytest.mark.plans
def test_staff_grant_a_plan_with_a_reason_and_it_is_audited(
    staff_client: Client, staff: User, account: Account
) -> None:
    until = (timezone.now() + timedelta(days=30)).replace(microsecond=0, second=0)
    data = {"plan": pro_plan().pk, "until": until.strftime("%Y-%m-%d %H:%M"), "reason": "workshop speaker"}
    response = staff_client.post(grant_url(account), data)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_account_change", args=[account.pk])
    grant = PlanGrant.objects.get()
    assert (grant.account, grant.plan, grant.granted_by, grant.reason, grant.until) == (
        account,
        pro_plan(),
        staff,
        "workshop speaker",
        until,
    )
    standing = standing_of(account)
    assert (standing.source, standing.plan) == ("grant", pro_plan())
    # Ending it is another row: the history stays.
    assert (
        staff_client.post(grant_url(account), {"plan": "", "until": "", "reason": "workshop over"}).status_code == 302
    )
    assert list(PlanGrant.objects.values_list("plan__slug", "reason")) == [
        (None, "workshop over"),
        ("pro", "workshop speaker"),
    ]
    assert standing_of(account).source == "default"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"until": "", "reason": ""}, "This field is required"),
        ({"until": "2001-01-01 00:00", "reason": "late"}, "must be in the future"),
        ({"until": "soon", "reason": "vague"}, "Enter a valid date/time"),
    ],
)
def test_a_bad_grant_is_explained_and_writes_nothing(
    staff_client: Client, account: Account, data: dict[str, str], message: str
) -> None:
    data = {**data, "plan": str(pro_plan().pk)}
    response = staff_client.post(grant_url(account), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PlanGrant.objects.exists()


def test_only_staff_reach_the_grant_form(owner_client: Client, account: Account) -> None:
    response = owner_client.get(grant_url(account))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    owner_client.post(grant_url(account), {"plan": pro_plan().pk, "reason": "me"})
    assert not PlanGrant.objects.exists()


def test_staff_without_the_change_permission_cannot_grant(account: Account) -> None:
    viewer = User.objects.create_user("viewer@example.com", PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client = Client()
    client.force_login(viewer)
    assert client.post(grant_url(account), {"plan": pro_plan().pk, "reason": "x"}).status_code == 403
    assert not PlanGrant.objects.exists()


def test_the_grant_action_leads_to_the_form_for_one_account(staff_client: Client, account: Account) -> None:
    changelist = reverse("admin:billing_account_changelist")
    response = staff_client.post(changelist, {"action": "grant_plan_action", "_selected_action": [account.pk]})
    assert response.status_code == 302
    assert response["Location"] == grant_url(account)


def test_the_grant_form_needs_a_csrf_token(staff: User, account: Account) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(grant_url(account), {"plan": pro_plan().pk, "reason": "x"}).status_code == 403
    assert not PlanGrant.objects.exists()


@pytest.mark.parametrize("model", ["subscription", "invoice", "plangrant"])
def test_stripes_records_and_grants_are_read_only(staff_client: Client, model: str) -> None:
    assert staff_client.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200
    assert staff_client.get(reverse(f"admin:billing_{model}_add")).status_code == 403


def test_plans_are_editable(staff_client: Client) -> None:
    pro = pro_plan()
    page = staff_client.get(reverse("admin:billing_plan_change", args=[pro.pk]))
    assert page.status_code == 200
    assert 'name="monthly_price_cents"' in page.content.decode()
