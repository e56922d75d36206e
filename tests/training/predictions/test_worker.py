"""The whole journey on real processes: the page sends the prediction, a light worker
started as the one-machine stack and the systemd unit start it (queues ``default`` and
``predict``) answers it, and the page shows the drawn picture."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from hubsite.models import User
from tests.helpers import WorkerFactory, wait_for
from tests.training.predictions.helpers import trained, trained_model

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]

HTMX = {"HX-Request": "true"}


def test_a_light_worker_answers_a_prediction_asked_for_on_the_page(
    owner_client: Client, user: User, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    model = trained_model(user, tmp_path, "classify")
    start_worker("default", "predict")
    picture = io.BytesIO(trained("classify").picture)
    picture.name = "photo.jpg"

    response = owner_client.post(
        reverse("training:predict_start", args=[model.uid]), {"picture": picture}, headers=HTMX
    )

    assert response.status_code == 200
    match = re.search(r"/predict/([A-Za-z0-9_-]{16,})/", response.content.decode())
    assert match is not None
    token = match.group(1)
    result_url = reverse("training:predict_result", args=[model.uid, token])
    finished = wait_for(
        lambda: (answer := owner_client.get(result_url, headers=HTMX)).status_code == 286 and answer,
        timeout=120,
        interval=0.5,
    )
    page = finished.content.decode()
    assert "Top classes" in page, page
    assert re.search(r"Inference [\d.]+ ms", page)
    image = owner_client.get(reverse("training:predict_image", args=[model.uid, token]))
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)
