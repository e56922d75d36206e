"""Spending caps on the pages: the session cap on Start and Resume (web and API), the
monthly cap at Start, and the Billing page's monthly cap form (issue 16)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from billing import services
from billing.models import CheckoutSession, LedgerLine
from hubsite.models import User
from tests.billing.helpers import set_monthly_cap, spend_this_month
from tests.factories import cpu_instance, fund, make_session
from training import payments, sessions
from training.models import TrainingSession, YoloModel

Status = TrainingSession.Status
HTMX = {"HX-Request": "true"}


def start_url(model: YoloModel) -> str:
    return reverse("training:train_start", kwargs={"uid": model.uid})


def start_data(**overrides: Any) -> dict[str, Any]:
    return {"mode": "epochs", "epochs": 3, "instance_type": cpu_instance().pk, "payment": "balance", **overrides}


def text(response: Any) -> str:
    return " ".join(response.content.decode().split())


# --- the session cap on the Start form -----------------------------------------------------


def test_start_with_a_session_cap_keeps_it_and_the_panel_shows_it(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    response = owner_client.post(start_url(model), start_data(spending_cap="5.00"), headers=HTMX)

    assert response.status_code == 200
    assert TrainingSession.objects.get().spending_cap_micros == 5_000_000
    assert "Spending cap</dt><dd>US$5.00: training stops before an epoch that would pass it" in text(response)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0", "Enter an amount above zero in US dollars, or leave it empty for no cap."),
        ("-3", "Enter an amount above zero in US dollars, or leave it empty for no cap."),
        ("5.001", "Enter the cap in whole cents (at most two decimals)."),
        ("100000.01", "A spending cap is at most US$100,000."),
        ("lots", "Enter a number."),
    ],
)
def test_a_bad_session_cap_is_a_field_error_and_starts_nothing(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None, typed: str, message: str
) -> None:
    fund(user, as_adjustment=True)
    response = owner_client.post(start_url(model), start_data(spending_cap=typed), headers=HTMX)

    assert response.status_code == 400
    assert message in text(response)
    assert not TrainingSession.objects.exists()


def test_a_timed_session_refuses_a_session_cap(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    data = start_data(mode="timed", hours=1, minutes=0, days=0, spending_cap="5")
    response = owner_client.post(start_url(model), data, headers=HTMX)

    assert response.status_code == 400
    assert "A spending cap per session applies to Epochs mode only" in text(response)
    assert not TrainingSession.objects.exists()
    assert not LedgerLine.objects.exclude(kind=LedgerLine.Kind.ADJUSTMENT).exists()


def test_the_estimate_says_what_the_cap_does(owner_client: Client, user: User, model: YoloModel) -> None:
    fund(user, as_adjustment=True)
    url = reverse("training:train_estimate", kwargs={"uid": model.uid})
    shown = text(owner_client.get(url, start_data(spending_cap="5")))
    assert "Cap <strong>US$5.00</strong>: training stops before an epoch that would pass it." in shown
    assert "Cap <strong>" not in text(owner_client.get(url, start_data(spending_cap="5.001")))


def test_a_cap_stopped_session_resumes_with_a_new_cap(user: User, model: YoloModel, cpu_online: None) -> None:
    fund(user, as_adjustment=True)
    stopped = make_session(user, model=model, instance_type=cpu_instance(), status=Status.STOPPED)
    YoloModel.objects.filter(pk=model.pk).update(
        epochs_completed=1, last_checkpoint=f"{model.storage_prefix}/checkpoints/epoch-0001.pt"
    )
    model.refresh_from_db()
    request = sessions.StartRequest(instance_type=cpu_instance(), target_epochs=3, spending_cap_micros=9_000_000)

    resumed = sessions.resume_session(user, stopped, request)

    assert (resumed.resumed_from_id, resumed.spending_cap_micros) == (stopped.pk, 9_000_000)


# --- the monthly cap at Start ------------------------------------------------------------


def test_start_is_refused_once_the_months_spend_reached_the_cap(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    spend_this_month(user, 2_000_000)
    set_monthly_cap(user, 2_000_000)

    response = owner_client.post(start_url(model), start_data(), headers=HTMX)

    assert response.status_code == 400
    assert escape("This month's spending cap of US$2.00 is reached (US$2.00 spent).") in text(response)
    assert not TrainingSession.objects.filter(model=model).exists()
    set_monthly_cap(user, 2_000_001)
    assert owner_client.post(start_url(model), start_data(), headers=HTMX).status_code == 200


def test_the_train_step_shows_the_monthly_cap_and_disables_start_once_reached(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    spend_this_month(user, 2_000_000)
    url = reverse("training:train_estimate", kwargs={"uid": model.uid})
    assert "monthly cap" not in text(owner_client.get(url, start_data()))

    set_monthly_cap(user, 3_000_000)
    below = text(owner_client.get(url, start_data()))
    assert "This month: US$2.00 spent of your US$3.00 monthly cap" in below
    assert "spending cap of" not in below

    set_monthly_cap(user, 2_000_000)
    reached = text(owner_client.get(url, start_data()))
    assert escape("This month's spending cap of US$2.00 is reached: raise it on the Billing page") in reached
    assert re.search(r'<ul class="blockers">', reached)


def test_a_timed_start_whose_prepayment_passes_the_monthly_cap_is_refused(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    set_monthly_cap(user, 100_000)  # US$0.10; an hour on the CPU type costs US$0.20
    data = start_data(mode="timed", hours=1, minutes=0, days=0)

    response = owner_client.post(start_url(model), data, headers=HTMX)

    assert response.status_code == 400
    assert escape("This would pass this month's spending cap of US$0.10") in text(response)
    assert not TrainingSession.objects.filter(model=model).exists()
    assert not LedgerLine.objects.filter(kind=LedgerLine.Kind.TIMED_PREPAYMENT).exists()


def test_the_panel_says_why_a_capped_session_stopped_or_paused(
    owner_client: Client, user: User, model: YoloModel
) -> None:
    detail = "Stopped before epoch 2: it would pass this session's spending cap of US$0.50 (US$0.45 spent)."
    stopped = make_session(user, model=model, instance_type=cpu_instance(), status=Status.STOPPED)
    TrainingSession.objects.filter(pk=stopped.pk).update(status_detail=detail)
    panel = reverse("training:train_panel", kwargs={"uid": model.uid})
    assert escape(detail) in text(owner_client.get(panel))

    paused = (
        "Paused before epoch 2: this month's spending cap of US$9.00 is reached. "
        "Raise it on the Billing page, then Resume."
    )
    TrainingSession.objects.filter(pk=stopped.pk).update(status=Status.PAUSED, status_detail=paused)
    body = text(owner_client.get(panel))
    assert escape(paused) in body
    assert "A top-up does not resume it." in body
    assert "your balance does not cover the next epoch" not in body


def test_pay_now_is_refused_before_the_card_when_its_price_would_pass_the_monthly_cap(
    user: User, model: YoloModel, cpu_online: None
) -> None:
    services.account_for(user)
    set_monthly_cap(user, 150_000)  # an hour on the CPU type costs US$0.20
    request = sessions.StartRequest(instance_type=cpu_instance(), mode="timed", time_budget_seconds=3600)

    with pytest.raises(sessions.StartRefused, match=re.escape("would pass this month's spending cap of US$0.15")):
        payments.open_pay_now(user, model, request)

    assert not CheckoutSession.objects.exists()
