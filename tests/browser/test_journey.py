"""A new user's whole journey in a real Chromium: sign up, upload, wizard, top-up
through the Stripe emulator, train, watch it live, stop, resume, download; then judge
the model (its evaluation, a prediction on a picture) and export it to OpenVINO.

Screenshots of every step land in test-artifacts/browser/.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from billing.money import format_usd
from tests.billing.stripe.emulator import Emulator
from tests.browser.chromium import browser_marks, shot
from tests.factories import ensure_instance_types
from tests.helpers import FAST_WORKER_ENV, WorkerFactory, wait_for
from training.datasets.synthetic import write_synthetic_dataset
from training.presence import live_queues

pytestmark = [*browser_marks, pytest.mark.training]


def test_a_new_user_trains_a_model_from_sign_up_to_downloads(
    page: object,
    live_server: LiveServer,
    stripe_live: Emulator,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    ensure_instance_types()
    start_worker("default", "predict", "train.cpu", extra_env=FAST_WORKER_ENV)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=30)
    base = live_server.url

    # Sign up.
    page.goto(f"{base}/accounts/signup/")
    page.fill("input[name=email]", "newcomer@example.com")
    page.fill("input[name=password1]", "a-long-enough-passphrase-9")
    page.fill("input[name=password2]", "a-long-enough-passphrase-9")
    shot(page, "01-sign-up")
    page.click("button:has-text('Sign up')")
    expect(page.locator("h1")).to_have_text("Welcome back")
    expect(page.locator("#header-balance")).to_have_text("US$0.00")

    # Upload the synthetic dataset and wait until validation says it is ready.
    archive = write_synthetic_dataset(tmp_path / "shapes.zip", train_images=96, val_images=8, image_size=64)
    page.click("nav >> text=Datasets")
    page.click("text=Upload")
    page.set_input_files("input[type=file]", str(archive))
    shot(page, "02-upload")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("text=Train a model").first).to_be_visible(timeout=90_000)
    shot(page, "03-dataset-ready")

    # The wizard: step 1 (dataset), step 2 (model), step 3 (train).
    page.click("nav >> text=Models")
    page.click("text=Train a model")
    expect(page.locator("[aria-current=step]")).to_have_text("1. Dataset")
    page.click("text=Use this dataset")
    expect(page.locator("[aria-current=step]")).to_have_text("2. Model")
    page.fill("input[name=name]", "shapes-detector")
    page.select_option("select[name=architecture]", "yolo11n")
    page.fill("input[name=epochs]", "3")
    page.fill("input[name=imgsz]", "64")
    page.fill("input[name=batch]", "2")
    page.fill("textarea[name=custom_args]", "nbs=2\nseed=0")
    shot(page, "04-wizard-model")
    page.click("text=Create model and continue")
    expect(page.locator("[aria-current=step]")).to_have_text("3. Train")
    start = page.locator("button:has-text('Start Training')")
    expect(start).to_be_disabled()
    expect(page.locator(".blockers")).to_contain_text("Epochs mode needs at least US$5.00")
    shot(page, "05-start-disabled-under-5")
    train_url = page.url

    # Top up through Stripe Checkout (the local emulator's stand-in page).
    page.click(".start-form >> text=Top up")
    page.click("button:has-text('US$10')")
    page.fill("input[name=card_number]", "4242 4242 4242 4242")
    shot(page, "06-stripe-checkout")
    page.click("button:has-text('Pay')")
    expect(page.locator("text=credited")).to_be_visible(timeout=30_000)
    expect(page.locator("#header-balance")).to_have_text("US$10.00")
    shot(page, "07-top-up-credited")

    # Start: the panel updates live, the charts appear when the first epoch lands.
    page.goto(train_url)
    expect(start).to_be_enabled()
    page.fill("input[name=epochs]", "3")
    start.click()
    expect(page.locator(".session-status")).to_contain_text("Training in progress", timeout=120_000)
    expect(page.locator("#train-charts svg").first).to_be_visible(timeout=120_000)
    assert page.url == train_url  # no reload: htmx swapped the panel and the charts
    shot(page, "08-training-live")

    # Stop, then Resume from the checkpoint.
    page.click("button:has-text('Stop Training')")
    expect(page.locator(".session-status")).to_contain_text("Stopped after epoch", timeout=30_000)
    shot(page, "09-stopped")
    stopped_at = int(re.search(r"Stopped after epoch (\d+)", page.inner_text(".session-status")).group(1))  # type: ignore[union-attr]
    expect(page.locator("h3")).to_contain_text(f"Resume Training from epoch {stopped_at + 1}")
    page.click("button:has-text('Resume Training')")
    expect(page.locator(".session-status")).to_contain_text("Completed: 3 epochs", timeout=240_000)
    shot(page, "10-completed")

    # Downloads: best.pt from Artifacts, the cost report from Billing.
    page.click("text=its page")
    page.click("nav.tabs >> text=Artifacts")
    with page.expect_download() as weights:
        page.click("a:has-text('best.pt')")
    assert weights.value.path().stat().st_size > 100_000
    shot(page, "11-artifacts")
    page.click("nav.tabs >> text=Billing")
    total_text = page.inner_text("#model-billing-total")
    with page.expect_download() as report:
        page.click("text=Download cost report")
    rows = list(csv.DictReader(io.StringIO(report.value.path().read_text())))
    shot(page, "12-billing")
    csv_total_micros = int(sum(Decimal(row["amount_usd"]) for row in rows) * 1_000_000)
    assert [int(row["epoch"]) for row in rows if row["kind"] == "epoch_charge"] == [1, 2, 3]
    assert csv_total_micros > 0
    assert total_text == format_usd(csv_total_micros, 4)
    # The estimate shown at each Start sits beside what the session was charged.
    estimates = page.locator("#model-billing td.estimate-at-start")
    expect(estimates).to_have_count(2)
    for text in estimates.all_inner_texts():
        assert text.startswith("US$") or text.startswith("under US$"), text

    # Evaluation: run on the light worker when the session ended, not billed.
    page.click("nav.tabs >> text=Evaluation")
    expect(page.locator("nav.tabs a.current")).to_have_text("Evaluation")
    evaluation = page.locator("#model-tab")
    expect(evaluation.locator("h3", has_text="Per class")).to_be_visible(timeout=180_000)
    expect(evaluation.locator("h3", has_text="Confusion matrix")).to_be_visible()
    expect(evaluation.locator("svg").first).to_be_visible()
    pictures = evaluation.locator(".evaluation-pictures img")
    assert pictures.count() >= 2  # ground truth beside predictions
    pictures.last.scroll_into_view_if_needed()
    all_loaded = "[...document.querySelectorAll('.evaluation-pictures img')].every(i => i.naturalWidth > 0)"
    page.wait_for_function(f"() => {all_loaded}")
    shot(page, "13-evaluation")

    # Predict on one of the dataset's pictures, on a worker.
    with zipfile.ZipFile(archive) as bundle:
        name = next(n for n in bundle.namelist() if n.startswith("images/val/"))
        picture = tmp_path / "picture.jpg"
        picture.write_bytes(bundle.read(name))
    page.click("nav.tabs >> text=Predict")
    form = page.locator("#predict-form")
    form.locator("input[name=conf]").fill("0.001")
    page.set_input_files("#predict-picture", str(picture))
    form.locator("button[type=submit]").click()
    expect(page.locator("#prediction img.prediction-image")).to_be_visible(timeout=120_000)
    expect(page.locator("#prediction-facts")).to_contain_text("Inference")
    shot(page, "14-predict")

    # A new export format: OpenVINO, built on the worker, downloaded as one zip.
    page.click("nav.tabs >> text=Artifacts")
    page.click("button:has-text('Export OpenVINO')")
    openvino = page.locator("li", has_text="OpenVINO")
    expect(openvino.locator("a:has-text('download')")).to_be_visible(timeout=300_000)
    with page.expect_download() as export:
        openvino.locator("a:has-text('download')").click()
    with zipfile.ZipFile(export.value.path()) as bundle:
        assert any(n.startswith("best_openvino_model/") and n.endswith(".xml") for n in bundle.namelist())
    assert export.value.suggested_filename == "shapes-detector-best-openvino.zip"
    shot(page, "15-export-openvino")
