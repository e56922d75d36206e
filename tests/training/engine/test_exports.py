"""The export job, on real weights: every format is exported by the job's own function,
stored under a fixed name, downloaded as the user gets it and run with its own runtime
for one prediction that must match the .pt's. User text never reaches a path: a model
with a climbing name exports inside its work folder, and every download's file name
is safe.

The weights are real: a tiny model trained once for this module, in this process."""

from __future__ import annotations

import re
import secrets
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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
from training.exports import export_key, request_export
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

IMGSZ = int(TINY_TRAINING["imgsz"])
# Trained this long, the tiny model finds the shapes with confidence (about 0.9);
# every export is compared with it on boxes and confidences, not only on faint noise.
TRAINING = {**TINY_TRAINING, "epochs": 40, "val": False}
TRAIN_IMAGES = 64
# What a download unpacks to, for the formats that are a folder.
FOLDERS = {"openvino": "best_openvino_model", "ncnn": "best_ncnn_model", "coreml": "best.mlpackage"}
FILE_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript"}


@dataclass(frozen=True)
class Trained:
    weights: bytes
    picture: Path  # a validation picture of the dataset it learned


@dataclass(frozen=True)
class Detection:
    label: int
    confidence: float
    box: tuple[float, ...]  # x1, y1, x2, y2 in pixels


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """yolo11n trained at 64 px on the synthetic shapes until it finds them."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    work = tmp_path_factory.mktemp("trained")
    archive = write_synthetic_dataset(work / "shapes.zip", train_images=TRAIN_IMAGES, val_images=4, image_size=IMGSZ)
    content = work / "content"
    content.mkdir()
    extract_archive(archive, content)
    data_yaml = work / "data.yaml"
    data_yaml.write_text(training_yaml_text(read_spec(content), content), encoding="utf-8")
    yolo = YOLO("yolo11n.yaml")
    yolo.train(data=str(data_yaml), device="cpu", workers=0, plots=False, save_dir=str(work / "run"), **TRAINING)
    trainer = yolo.trainer
    assert trainer is not None
    picture = sorted((content / "images" / "val").glob("*.jpg"))[0]
    return Trained(Path(trainer.last).read_bytes(), picture)


@pytest.fixture(scope="module")
def reference(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> list[Detection]:
    """The .pt's own prediction on the picture."""
    weights = tmp_path_factory.mktemp("reference") / "best.pt"
    weights.write_bytes(trained.weights)
    found = detections(weights, trained.picture)
    assert any(detection.confidence > 0.5 for detection in found), found  # it learned something to compare
    return found


def detections(model: Path, picture: Path) -> list[Detection]:
    """One prediction of ``model`` (weights, an exported file or folder) with its runtime."""
    from ultralytics import YOLO  # type: ignore[attr-defined]
    from ultralytics.engine.results import Results

    (result,) = YOLO(str(model), task="detect").predict(str(picture), imgsz=IMGSZ, conf=0.01, device="cpu")
    assert isinstance(result, Results)
    boxes = result.boxes
    assert boxes is not None
    return [
        Detection(int(label), float(confidence), tuple(box))
        for label, confidence, box in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)
    ]


def same_detection(one: Detection, other: Detection) -> bool:
    """Same class, confidence within 0.01, every corner within one pixel of 64."""
    return (
        one.label == other.label
        and abs(one.confidence - other.confidence) <= 0.01
        and max(abs(a - b) for a, b in zip(one.box, other.box, strict=True)) <= 1.0
    )


def assert_same_detections(exported: list[Detection], reference: list[Detection]) -> None:
    # Boxes just above the 0.01 threshold may fall either side of it; the clear ones must all match.
    for found, expected in ((exported, reference), (reference, exported)):
        for detection in (detection for detection in found if detection.confidence >= 0.02):
            assert any(same_detection(detection, other) for other in expected), (detection, expected)


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


def downloaded(client: Client, model: YoloModel, export_format: str, target: Path) -> Path:
    """The export as the user downloads it, unpacked: the file, or the format's folder."""
    response = client.get(reverse("training:export_download", args=[model.uid, export_format]))
    assert response.status_code == 200
    target.mkdir()
    download = target / attachment_filename(response["Content-Disposition"])
    download.write_bytes(b"".join(response))
    if export_format in FILE_SUFFIXES:
        return download
    with zipfile.ZipFile(download) as bundle:
        names = bundle.namelist()
        assert all(name.startswith(f"{FOLDERS[export_format]}/") for name in names), names
        bundle.extractall(target)
    return target / FOLDERS[export_format]


@pytest.mark.training
@pytest.mark.parametrize("export_format", sorted(FILE_SUFFIXES.keys() | FOLDERS.keys()))
def test_each_format_exports_in_its_work_folder_and_predicts_like_the_weights(
    user: User,
    owner_client: Client,
    trained: Trained,
    reference: list[Detection],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    export_format: str,
) -> None:
    token = f"hubsite-escape-{secrets.token_hex(6)}"
    model = hostile_model(user, escape_target(token), trained.weights)
    sandbox = tmp_path / "tmp"
    sandbox.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sandbox))  # the export's work folder goes here
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # where OpenVINO's telemetry would keep its client id
    before = all_storage_keys()

    export = request_export(model, export_format)
    run_export(export.pk)

    assert files_below(home) == set()
    escaped = list(Path("/tmp").glob(f"{token}*"))  # noqa: S108 - where the attack would land
    for path in escaped:
        path.unlink()
    assert escaped == []
    export.refresh_from_db()
    assert export.status == Export.Status.DONE, export.error
    assert files_below(tmp_path) == set()  # the work folder is gone and nothing was left beside it
    ending = FILE_SUFFIXES.get(export_format, f"-{export_format}.zip")
    assert export.file.name == f"{model.storage_prefix}/exports/best{ending}"
    assert all_storage_keys() - before == {export.file.name}

    unpacked = downloaded(owner_client, model, export_format, tmp_path / "download")
    if export_format == "coreml":
        assert_a_coreml_package_of(unpacked, names=3)  # its predictions need macOS
    else:
        assert_same_detections(detections(unpacked, trained.picture), reference)


def assert_a_coreml_package_of(package: Path, *, names: int) -> None:
    """The package loads in coremltools: a 64 px RGB picture in, the detection head's
    raw output out (4 box values and one score per class, for each of 8² + 4² + 2² cells)."""
    import coremltools  # type: ignore[import-untyped]

    description = coremltools.utils.load_spec(str(package)).description
    (picture,) = description.input
    assert (picture.type.imageType.width, picture.type.imageType.height) == (IMGSZ, IMGSZ)
    (output,) = description.output
    assert list(output.type.multiArrayType.shape) == [1, 4 + names, 84]
    assert description.metadata.userDefined["task"] == "detect"


# -- the job itself ----------------------------------------------------------------


@pytest.mark.training
def test_exporting_again_replaces_the_stored_file(user: User, trained: Trained) -> None:
    model = hostile_model(user, "detector", trained.weights)
    stale = storage_put(export_key(model, "torchscript"), b"an older export")
    Export.objects.create(model=model, format="torchscript", status=Export.Status.DONE, file=stale, weights_epoch=0)
    before = all_storage_keys()

    export = request_export(model, "torchscript")
    run_export(export.pk)

    export.refresh_from_db()
    assert (export.status, export.weights_epoch, export.file.name) == (Export.Status.DONE, 1, stale)
    assert all_storage_keys() == before
    with default_storage.open(stale, "rb") as stored:
        assert stored.read(2) == b"PK"  # a TorchScript archive, no longer the older bytes
    assert default_storage.size(stale) > 10_000


def test_a_failed_export_says_why_and_stores_nothing(
    user: User, owner_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = hostile_model(user, "detector", b"not a checkpoint")
    sandbox = tmp_path / "tmp"
    sandbox.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sandbox))
    before = all_storage_keys()

    export = request_export(model, "openvino")
    run_export(export.pk)

    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert export.error.startswith("The export failed: ")
    assert export.finished_at is not None
    assert not export.file
    assert all_storage_keys() == before
    assert files_below(sandbox) == set()
    page = owner_client.get(reverse("training:model_detail", args=[model.uid]), {"tab": "artifacts"}).content.decode()
    assert "Export OpenVINO again" in page
    assert "The export failed: " in page


def test_only_a_pending_export_is_claimed(user: User) -> None:
    model = hostile_model(user, "detector", b"not a checkpoint")
    export = Export.objects.create(model=model, format="onnx", status=Export.Status.RUNNING)

    run_export(export.pk)  # a second delivery of the message, while a worker runs it

    export.refresh_from_db()
    assert (export.status, export.error, export.finished_at) == (Export.Status.RUNNING, "", None)


def test_a_second_request_while_pending_queues_nothing(
    user: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    model = hostile_model(user, "detector", b"weights")

    with django_capture_on_commit_callbacks() as first_sends:
        first = request_export(model, "ncnn")
    with django_capture_on_commit_callbacks() as second_sends:
        second = request_export(model, "ncnn")

    assert second.pk == first.pk
    assert model.exports.get().status == Export.Status.PENDING
    assert (len(first_sends), len(second_sends)) == (1, 0)


# -- download names ------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_download_of_a_hostile_name_gets_a_safe_file_name(user: User, owner_client: Client, name: str) -> None:
    model = hostile_model(user, name, b"weights")
    dataset = model.dataset
    dataset.archive.name = storage_put(f"{dataset.storage_prefix}/archive.zip", b"PK zip")
    dataset.save()
    for export_format in ("onnx", "openvino"):
        key = storage_put(export_key(model, export_format), b"export")
        Export.objects.create(model=model, format=export_format, status=Export.Status.DONE, file=key)

    urls = {
        reverse("training:dataset_download", args=[dataset.uid]): ".zip",
        reverse("training:model_weights", args=[model.uid, "best"]): "-best.pt",
        reverse("training:export_download", args=[model.uid, "onnx"]): "-best.onnx",
        reverse("training:export_download", args=[model.uid, "openvino"]): "-best-openvino.zip",
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
