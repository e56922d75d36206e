"""The Predict tab in a real Chromium, answered by a real light worker: upload a
picture and see the drawn result and what was found, move the confidence slider, save
the result, then try one of the dataset's validation pictures; the tab at a phone's width.

Screenshots land in test-artifacts/browser/ (prefix ``predict-``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from tests.browser.chromium import browser_marks, log_in, shot, shot_on_phone
from tests.factories import make_user
from tests.helpers import WorkerFactory
from tests.training.predictions.helpers import trained, trained_model
from training.datasets import sample_key, storage_put
from training.models import SavedPrediction

pytestmark = [*browser_marks, pytest.mark.training]


def test_a_user_tries_a_model_on_a_picture_moves_the_slider_and_saves_the_result(
    page: object, live_server: LiveServer, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    user = make_user("predictor@example.com")
    model = trained_model(user, tmp_path, "detect")
    dataset = model.dataset
    # One validation picture kept as a sample, as the dataset's validation keeps them.
    storage_put(sample_key(dataset, 0), trained("detect").picture)
    dataset.stats = {"samples": [{"index": 0, "split": "val", "name": trained("detect").picture_name}]}
    dataset.save()
    start_worker("default", "predict")
    log_in(page, live_server, user)
    picture = tmp_path / "photo.jpg"
    picture.write_bytes(trained("detect").picture)

    page.goto(f"{live_server.url}/models/{model.uid}/")
    page.click("nav.tabs >> text=Predict")
    form = page.locator("#predict-form")
    form.locator("input[name=conf]").fill("0.001")
    page.set_input_files("#predict-picture", str(picture))
    form.locator("button[type=submit]").click()

    result = page.locator("#prediction")
    expect(result.locator("img.prediction-image")).to_be_visible(timeout=120_000)
    expect(result).to_contain_text("Inference")
    expect(result.locator("table.detections tbody tr").first).to_be_visible()
    shot(page, "predict-01-result")

    # The slider re-runs the prediction on the same picture.
    result.locator("input[name=conf]").fill("0.99")
    expect(result).to_contain_text("Nothing found at this confidence", timeout=60_000)
    expect(result).to_contain_text("confidence ≥ 0.990")

    result.locator("text=Save this result").click()
    expect(page.locator("#saved-predictions img")).to_have_count(1)
    assert SavedPrediction.objects.get(model=model).source == "uploaded picture"

    # A validation picture, picked from its thumbnail.
    drawn = result.locator("img.prediction-image")
    previous = drawn.get_attribute("src")
    page.locator(f"button[title='Predict on {trained('detect').picture_name}']").click()
    expect(drawn).not_to_have_attribute("src", previous or "", timeout=60_000)
    result.locator("text=Save this result").click()
    expect(page.locator("#saved-predictions")).to_contain_text(f"validation picture {trained('detect').picture_name}")
    shot_on_phone(page, "predict-02-phone")
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, width
