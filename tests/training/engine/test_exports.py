"""User text never reaches a path: exports of a model with a hostile name stay in
their work folder and their storage prefix, and every download's file name is safe.

The weights are real: a tiny model trained for one epoch in this process, exported
for real (TorchScript and ONNX) by the export job's own function."""

from __future__ import annotations

import re
import secrets
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from hubsite.models import User
from tests.factories import TINY_TRAINING
from tests.training.datasets.helpers import all_storage_keys
from training.datasets import extract_archive, read_spec, storage_put, training_yaml_text
from training.datasets.synthetic import write_synthetic_dataset
from training.engine.exports import run_export
from training.exports import request_export
from training.models import Dataset, Export, YoloModel

pytestmark = pytest.mark.django_db

HOSTILE_NAMES = [
    "../../../../tmp/x",
    "a/b\\c/../../d",
    '"quoted"; filename="evil.exe"',
    "line\nbreak\r\nSet-Cookie: x=1",
    "\u202egpj.exe Ωmega ✓",
    "..",
]
SAFE_FILENAME = re.compile(r"[\w\-]+\.[a-z]+")  # letters, digits, _ and - (no dots, slashes, quotes, controls)


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """best.pt of yolo11n trained for one epoch at 64 px on the synthetic shapes."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    work = tmp_path_factory.mktemp("trained")
    archive = write_synthetic_dataset(work / "shapes.zip", train_images=8, val_images=4, image_size=64)
    content = work / "content"
    content.mkdir()
    extract_archive(archive, content)
    data_yaml = work / "data.yaml"
    data_yaml.write_text(training_yaml_text(read_spec(content), content), encoding="utf-8")
    yolo = YOLO("yolo11n.yaml")
    yolo.train(
        data=str(data_yaml), epochs=1, device="cpu", workers=0, plots=False, save_dir=str(work / "run"), **TINY_TRAINING
    )
    trainer = yolo.trainer
    assert trainer is not None
    return Path(trainer.best).read_bytes()


def hostile_model(user: User, name: str, weights: bytes) -> YoloModel:
    dataset = Dataset.objects.create(owner=user, name=name, status=Dataset.Status.READY)
    model = YoloModel.objects.create(
        owner=user, name=name, dataset=dataset, architecture="yolo11n", train_args=dict(TINY_TRAINING)
    )
    model.best_weights.name = storage_put(f"{model.storage_prefix}/best.pt", weights)
    model.epochs_completed = 1
    model.save()
    return model


def files_below(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def escape_target(token: str) -> str:
    """A model name that climbs from any work folder to /tmp/<token>."""
    return "../" * 20 + f"tmp/{token}"


@pytest.mark.parametrize("export_format", ["torchscript", "onnx"])
def test_an_export_of_a_model_with_a_climbing_name_stays_in_its_work_folder(
    user: User, trained_weights: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export_format: str
) -> None:
    token = f"hubsite-escape-{secrets.token_hex(6)}"
    model = hostile_model(user, escape_target(token), trained_weights)
    sandbox = tmp_path / "tmp"
    sandbox.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sandbox))  # the export's work folder goes here
    before = all_storage_keys()

    export = request_export(model, export_format)
    run_export(export.pk)

    escaped = list(Path("/tmp").glob(f"{token}*"))  # noqa: S108 - where the attack would land
    for path in escaped:
        path.unlink()
    assert escaped == []
    export.refresh_from_db()
    assert export.status == Export.Status.DONE, export.error
    assert files_below(tmp_path) == set()  # the work folder is gone and nothing was left beside it
    suffix = {"torchscript": ".torchscript", "onnx": ".onnx"}[export_format]
    assert export.file.name == f"{model.storage_prefix}/exports/best{suffix}"
    assert all_storage_keys() - before == {export.file.name}
    assert default_storage.size(export.file.name) > 10_000


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_download_of_a_hostile_name_gets_a_safe_file_name(user: User, owner_client: Client, name: str) -> None:
    model = hostile_model(user, name, b"weights")
    dataset = model.dataset
    dataset.archive.name = storage_put(f"{dataset.storage_prefix}/archive.zip", b"PK zip")
    dataset.save()
    export_key = storage_put(f"{model.storage_prefix}/exports/best.onnx", b"onnx")
    Export.objects.create(model=model, format=Export.Format.ONNX, status=Export.Status.DONE, file=export_key)

    urls = {
        reverse("training:dataset_download", args=[dataset.uid]): ".zip",
        reverse("training:model_weights", args=[model.uid, "best"]): "-best.pt",
        reverse("training:export_download", args=[model.uid, "onnx"]): "-best.onnx",
    }
    for url, ending in urls.items():
        response = owner_client.get(url)
        assert response.status_code == 200, url
        filename = attachment_filename(response["Content-Disposition"])
        assert SAFE_FILENAME.fullmatch(filename), filename
        assert filename.endswith(ending)


def attachment_filename(disposition: str) -> str:
    plain = re.fullmatch(r'attachment; filename="([^"\\]*)"', disposition)
    if plain is not None:
        return plain.group(1)
    encoded = re.fullmatch(r"attachment; filename\*=utf-8''([A-Za-z0-9%._\-]*)", disposition)
    assert encoded is not None, disposition
    return unquote(encoded.group(1))


def test_a_unicode_name_keeps_its_letters_in_the_download_name(user: User, owner_client: Client) -> None:
    model = hostile_model(user, "猫と犬 Katze/../v2", b"weights")
    response = owner_client.get(reverse("training:model_weights", args=[model.uid, "best"]))
    assert attachment_filename(response["Content-Disposition"]) == "猫と犬-katzev2-best.pt"
