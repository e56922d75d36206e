"""The estimate shown at Start is recorded with the session and set beside the final
cost on the Billing tab."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import LedgerLine
from billing.templatetags.billing_tags import estimate_at_start
from hubsite.models import User
from tests.factories import cpu_instance, fund
from training.models import EpochRecord, TrainingSession, YoloModel

HTMX = {"HX-Request": "true"}


def url(name: str, model: YoloModel) -> str:
    return reverse(f"training:{name}", kwargs={"uid": model.uid})


def shown_estimate(client: Client, model: YoloModel, choices: dict[str, Any]) -> str:
    """The figure in the Start form's estimate for ``choices``."""
    body = client.get(url("train_estimate", model), choices, headers=HTMX).content.decode()
    match = re.search(r"(?:Estimated cost|Price): <strong>(.*?)</strong>", body)
    assert match, body
    return match.group(1)


def add_past_epochs(model: YoloModel, durations_ms: list[int]) -> None:
    """Completed epochs of a stopped session of ``model``, with these durations."""
    session = TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=10,
        status=TrainingSession.Status.STOPPED, finished_at=timezone.now(),
    )  # fmt: skip
    now = timezone.now()
    EpochRecord.objects.bulk_create(
        EpochRecord(
            session=session, model=model, epoch=number, duration_ms=duration,
            started_at=now - timedelta(milliseconds=duration), finished_at=now + timedelta(seconds=number),
        )
        for number, duration in enumerate(durations_ms, start=1)
    )  # fmt: skip
    YoloModel.objects.filter(pk=model.pk).update(epochs_completed=len(durations_ms))
    model.refresh_from_db()


def test_an_epochs_start_records_the_range_the_form_showed(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    choices = {"mode": "epochs", "epochs": 30, "instance_type": cpu_instance().pk, "payment": "balance"}
    shown = shown_estimate(owner_client, model, choices)
    assert " \N{EN DASH} " in shown  # a range: no epoch of this architecture has run on this type

    owner_client.post(url("train_start", model), choices, headers=HTMX)

    session = TrainingSession.objects.get()
    assert session.estimated_low_micros is not None
    assert session.estimated_high_micros is not None
    assert 0 < session.estimated_low_micros < session.estimated_high_micros
    assert estimate_at_start(session) == shown


def test_a_start_estimates_the_epochs_left_from_measured_epochs(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    add_past_epochs(model, [40_000, 50_000, 60_000, 70_000])
    choices = {"mode": "epochs", "epochs": 10, "instance_type": cpu_instance().pk, "payment": "balance"}
    shown = shown_estimate(owner_client, model, choices)

    owner_client.post(url("train_start", model), choices, headers=HTMX)

    session = TrainingSession.objects.get(status=TrainingSession.Status.QUEUED)
    assert estimate_at_start(session) == shown
    # 6 epochs left, each between the quartiles of the measured 40-70 s at US$0.20/h.
    price = cpu_instance().price_per_hour_micros
    assert session.estimated_low_micros == 6 * (42 * 1000 * price // 3_600_000)  # first quartile 42.5 s
    assert session.estimated_high_micros == 6 * (68 * 1000 * price // 3_600_000)  # third quartile 67.5 s


def test_a_timed_start_records_exactly_the_prepaid_price(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    choices = {"mode": "timed", "days": 0, "hours": 1, "minutes": 15, "instance_type": cpu_instance().pk}
    shown = shown_estimate(owner_client, model, choices)

    owner_client.post(url("train_start", model), {**choices, "payment": "balance"}, headers=HTMX)

    session = TrainingSession.objects.get()
    prepaid = LedgerLine.objects.get(session=session, kind=LedgerLine.Kind.TIMED_PREPAYMENT)
    assert session.estimated_low_micros == session.estimated_high_micros == -prepaid.amount_micros
    assert estimate_at_start(session) == shown == "US$0.25"


def test_the_billing_tab_sets_the_estimate_beside_the_price(owner_client: Client, user: User, model: YoloModel) -> None:
    recorded = TrainingSession.objects.create(
        model=model, owner=user, instance_type=cpu_instance(), target_epochs=3,
        status=TrainingSession.Status.COMPLETED, estimated_low_micros=100_000, estimated_high_micros=300_000,
    )  # fmt: skip
    earlier = TrainingSession.objects.create(  # started before estimates were recorded
        model=model, owner=user, instance_type=cpu_instance(), target_epochs=3, status=TrainingSession.Status.STOPPED,
    )  # fmt: skip
    TrainingSession.objects.filter(pk=earlier.pk).update(created_at=recorded.created_at - timedelta(days=1))

    page = owner_client.get(reverse("training:model_detail", args=[model.uid]) + "?tab=billing").content.decode()

    cells = re.findall(r'<td class="num estimate-at-start">(.*?)</td>', page)
    assert "Estimated at Start" in page
    assert cells == ["US$0.10 \N{EN DASH} US$0.30", "\N{EM DASH}"]
