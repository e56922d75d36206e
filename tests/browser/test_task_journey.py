"""A segmentation user's journey in a real Chromium: upload polygons (the task read
from the files), train a segmentation model and watch its mask metrics, download its
weights, then fine-tune a second model from the first one's best weights.

Screenshots land in test-artifacts/browser/ (prefix ``seg-``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from tests.browser.chromium import browser_marks, log_in, shot
from tests.factories import ensure_instance_types, fund, make_user
from tests.helpers import FAST_WORKER_ENV, WorkerFactory, wait_for
from training.datasets.synthetic import write_synthetic_dataset
from training.models import Dataset, YoloModel
from training.presence import live_queues

pytestmark = [*browser_marks, pytest.mark.training]


def test_a_segmentation_model_trains_and_a_second_one_fine_tunes_from_it(
    page: object, live_server: LiveServer, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    ensure_instance_types()
    user = make_user("segmenter@example.com")
    fund(user)
    start_worker("default", "train.cpu", extra_env=FAST_WORKER_ENV)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=30)
    log_in(page, live_server, user)
    base = live_server.url

    # Upload polygons with the task left to the files: it is read as segmentation.
    archive = write_synthetic_dataset(
        tmp_path / "polygons.zip", train_images=16, val_images=8, image_size=64, task="segment"
    )
    page.goto(f"{base}/")
    page.click("nav >> text=Datasets")
    page.click("text=Upload")
    expect(page.locator("select[name=task]")).to_have_value("")
    page.set_input_files("input[type=file]", str(archive))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("text=Train a model").first).to_be_visible(timeout=90_000)
    expect(page.locator("main")).to_contain_text("Segmentation")
    expect(page.locator("main img").first).to_be_visible()  # the samples, masks drawn
    shot(page, "seg-01-dataset-ready")
    assert Dataset.objects.get(owner=user).task == Dataset.Task.SEGMENT

    # The wizard offers segmentation architectures only.
    page.click("nav >> text=Models")
    page.click("text=Train a model")
    page.click("text=Use this dataset")
    architecture = page.locator("select[name=architecture]")
    expect(architecture).to_have_value("yolo11n-seg")
    offered = architecture.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert offered
    assert all(name.endswith("-seg") for name in offered)
    page.fill("input[name=name]", "shapes-segmenter")
    _small_training_arguments(page)
    shot(page, "seg-02-wizard-model")
    page.click("text=Create model and continue")
    _train_to_completion(page, epochs=2)
    expect(page.locator(".metrics-headline")).to_contain_text("mask mAP50")
    expect(page.locator("#train-charts")).to_contain_text("Mask mAP50")
    expect(page.locator("#train-charts")).to_contain_text("Mask loss")
    shot(page, "seg-03-completed")

    page.click("text=its page")
    page.click("nav.tabs >> text=Artifacts")
    with page.expect_download() as weights:
        page.click("a:has-text('best.pt')")
    assert weights.value.path().stat().st_size > 100_000

    # A second model starts from the first one's best weights.
    parent = YoloModel.objects.get(owner=user, name="shapes-segmenter")
    page.click("nav >> text=Models")
    page.click("text=Train a model")
    page.click("text=Use this dataset")
    page.fill("input[name=name]", "shapes-segmenter-tuned")
    page.select_option("select[name=start_from]", f"model:{parent.uid}:best")
    _small_training_arguments(page)
    shot(page, "seg-04-start-from-own-model")
    page.click("text=Create model and continue")
    _train_to_completion(page, epochs=1)
    page.click("text=its page")
    expect(page.locator("#model-lineage")).to_contain_text("Fine-tuned from shapes-segmenter")
    shot(page, "seg-05-lineage")
    tuned = YoloModel.objects.get(owner=user, name="shapes-segmenter-tuned")
    assert tuned.parent == parent
    assert tuned.architecture == "yolo11n-seg"
    assert tuned.epochs.count() == 1


def _small_training_arguments(page: object) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.fill("input[name=epochs]", "2")
    page.fill("input[name=imgsz]", "64")
    page.fill("input[name=batch]", "4")
    page.fill("textarea[name=custom_args]", "nbs=4\nseed=0")


def _train_to_completion(page: object, *, epochs: int) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    start = page.locator("button:has-text('Start Training')")
    expect(start).to_be_enabled()
    page.fill("input[name=epochs]", str(epochs))
    start.click()
    completed = f"Completed: {epochs} epoch{'' if epochs == 1 else 's'}."
    expect(page.locator(".session-status")).to_contain_text(completed, timeout=240_000)
