"""The API's session spending cap (issue 16): validated as the Start form does, and the
monthly cap's refusal with its own code."""

from __future__ import annotations

from typing import Any

import pytest

from hubsite.models import User
from tests.api.conftest import KeyClient
from tests.billing.helpers import set_monthly_cap, spend_this_month
from tests.factories import fund
from training.models import TrainingSession, YoloModel

pytestmark = pytest.mark.django_db


# ---


def api_start(client: KeyClient, model: YoloModel, **overrides: Any) -> Any:
    body = {"model_id": model.pk, "mode": "epochs", "epochs": 3, "instance_type": "cpu", **overrides}
    return client.post("/api/v1/sessions", body, content_type="application/json")


def test_the_api_starts_with_a_session_cap(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    response = api_start(api_client, model, spending_cap_usd="7.25")

    assert response.status_code == 201, response.content
    assert response.json()["spending_cap_micros"] == 7_250_000
    assert TrainingSession.objects.get().spending_cap_micros == 7_250_000


@pytest.mark.parametrize("cap", ["0", "7.255", "100001", -1])
def test_the_api_refuses_a_bad_session_cap_as_the_form_does(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None, cap: object
) -> None:
    fund(user)
    response = api_start(api_client, model, spending_cap_usd=cap)

    assert response.status_code == 422, response.content
    assert "spending_cap_usd" in response.content.decode()
    assert not TrainingSession.objects.exists()


def test_the_api_says_when_the_monthly_cap_refuses_a_start(
    api_client: KeyClient, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    spend_this_month(user, 1_000_000)
    set_monthly_cap(user, 1_000_000)

    response = api_start(api_client, model)

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "spending_cap_reached"
    assert not TrainingSession.objects.filter(model=model).exists()
