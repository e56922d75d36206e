"""The real thing: an unmodified ultralytics ``YOLO(...).train(...)`` in a child
process, pointed at the live test server with a personal API key, reports a remote
session to a model page: epochs, console, checked weights; and obeys Stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from api.keys import create_key
from billing.models import LedgerLine
from hubsite.models import User
from training.datasets.synthetic import write_synthetic_dataset
from training.models import EpochRecord, RemoteUpload, TrainingSession, YoloModel
from training.remote import uploads

pytestmark = pytest.mark.django_db(transaction=True)

TRAIN_SCRIPT = """
import os, sys
from ultralytics import YOLO, settings

# ultralytics puts runs beside the git checkout its package sits in (here: the site's).
settings.update(runs_dir=os.path.join(os.getcwd(), "runs"))
YOLO("yolo11n.yaml").train(
    data=sys.argv[1], epochs=int(sys.argv[2]), imgsz=64, batch=8, project="remote-test", name="exp",
    workers=0, device="cpu", plots=False, exist_ok=True, val=True, amp=False, seed=0,
)
"""


def synthetic_data_yaml(folder: Path) -> Path:
    archive = write_synthetic_dataset(folder / "shapes.zip", train_images=16, val_images=8, image_size=64)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder / "shapes")
    data_yaml = folder / "shapes" / "data.yaml"
    data_yaml.write_text(data_yaml.read_text().replace("path: .", f"path: {folder / 'shapes'}"))
    return data_yaml


def child_environment(key: str, url: str, folder: Path) -> dict[str, str]:
    """The test's environment as a user's shell would have it: no pytest marker (it
    would switch the callbacks off), no settings file holding a key, our fonts."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "RUNNER_OS", "ULTRALYTICS_API_KEY"}
    }
    config = folder / "yolo-config"
    fonts = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    (config / "Ultralytics").mkdir(parents=True)
    for font in fonts.glob("*.ttf"):  # not settings.json: its runs_dir is the site's checkout
        shutil.copy(font, config / "Ultralytics" / font.name)
    environment.update(
        ULTRALYTICS_API_KEY=key,
        ULTRALYTICS_PLATFORM_URL=url,
        YOLO_CONFIG_DIR=str(config),
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
    )
    return environment


def start_training(tmp_path: Path, key: str, url: str, epochs: int) -> subprocess.Popen[bytes]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(synthetic_data_yaml(tmp_path)), str(epochs)],
        cwd=tmp_path,
        env=child_environment(key, url, tmp_path),
        stdout=(tmp_path / "child.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def finish(process: subprocess.Popen[bytes], tmp_path: Path, timeout: float = 540) -> str:
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "child.log").read_text(errors="replace")
    assert process.returncode == 0, log[-4000:]
    return log


def ledger_lines(user: User) -> int:
    return LedgerLine.objects.filter(account__user=user).count()


def owner_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_unmodified_yolo_train_reports_to_a_model_page(live_server: LiveServer, user: User, tmp_path: Path) -> None:
    before = ledger_lines(user)
    key = create_key(user, "laptop", ["train"])[1]
    log = finish(start_training(tmp_path, key, live_server.url, 3), tmp_path)

    session = TrainingSession.objects.select_related("model").get(owner=user)
    assert session.remote, log[-2000:]
    assert session.status == "completed"
    model = session.model
    assert model.architecture == "yolo11n"
    assert str(model.uid) in log  # "View model at <our model page>"
    records = list(EpochRecord.objects.filter(model=model).order_by("epoch"))
    assert [record.epoch for record in records] == [1, 2, 3]
    assert all("map50" in record.metrics and "train_box_loss" in record.metrics for record in records)
    assert [row[0] for row in YoloModel.objects.get(pk=model.pk).epoch_series] == [1, 2, 3]
    assert "3 epochs completed" in session.log_tail

    upload = RemoteUpload.objects.get(session=session)
    assert upload.status == "checking"  # the light worker's turn: this test stands in for it
    assert not YoloModel.objects.get(pk=model.pk).best_weights
    assert uploads.run_remote_check(upload.pk) == "promoted"

    client = owner_client(user)
    page = client.get(f"/models/{model.uid}/train/")
    assert page.status_code == 200
    assert "Your hardware — free" in page.content.decode()
    response = client.get(f"/models/{model.uid}/weights/best/")
    assert response.status_code == 200
    weights = tmp_path / "downloaded.pt"
    weights.write_bytes(b"".join(response.streaming_content))  # type: ignore[attr-defined]
    from ultralytics import YOLO  # type: ignore[attr-defined]  # the test process may load it: it checks what a user would download

    assert YOLO(str(weights)).task == "detect"
    assert ledger_lines(user) == before


def test_stop_on_the_page_cancels_the_run(live_server: LiveServer, user: User, tmp_path: Path) -> None:
    before = ledger_lines(user)
    key = create_key(user, "laptop", ["train"])[1]
    process = start_training(tmp_path, key, live_server.url, 40)
    deadline = time.monotonic() + 300
    while not EpochRecord.objects.filter(model__owner=user).exists():
        assert process.poll() is None, (tmp_path / "child.log").read_text(errors="replace")[-4000:]
        assert time.monotonic() < deadline, "no epoch was reported"
        time.sleep(0.5)
    model = YoloModel.objects.get(owner=user)
    response = owner_client(user).post(f"/models/{model.uid}/train/stop/")
    assert response.status_code in (200, 302)
    assert TrainingSession.objects.get(model=model).status in ("stopping", "stopped")
    finish(process, tmp_path)

    session = TrainingSession.objects.get(model=model)
    assert session.status == "stopped"
    completed: Any = EpochRecord.objects.filter(model=model).count()
    assert 1 <= completed < 40
    assert ledger_lines(user) == before
