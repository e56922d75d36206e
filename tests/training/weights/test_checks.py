"""The upload check: hostile, damaged and real files, through the same code the light
worker runs (in this process)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.training.weights.helpers import write_malicious_checkpoint, write_yolo_checkpoint
from training.models import WeightsUpload
from training.weights import create_weights_upload, shipped_names
from training.yolo.checkpoints import CheckpointRefused, allowed_names, sanitise

pytestmark = pytest.mark.django_db


def upload_file(user: User, path: Path) -> WeightsUpload:
    with path.open("rb") as handle:
        return create_weights_upload(user, path.stem, path.name, handle, validate_now=True)


def test_a_pickle_that_runs_code_is_refused_naming_it_and_runs_nothing(user: User, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker)
    # The file is what it claims: an unrestricted load does write the marker (in another process).
    proof = tmp_path / "proof"
    subprocess.run(
        [sys.executable, "-c", f"import torch; torch.load({str(evil)!r}, weights_only=False)"],
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        timeout=120,
    )
    assert marker.exists()
    marker.rename(proof)

    upload = upload_file(user, evil)

    assert upload.status == WeightsUpload.Status.INVALID
    assert upload.error == "This file holds code or objects we do not load: posix.system."
    assert not marker.exists()
    assert not upload.weights
    assert not default_storage.exists(f"{upload.storage_prefix}/upload.pt")  # the file is gone, not kept


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_a_damaged_file_is_refused_as_not_a_checkpoint(user: User, tmp_path: Path, damage: str) -> None:
    good = write_yolo_checkpoint(tmp_path / "good.pt").read_bytes()
    data = {"random": os.urandom(4096), "truncated": good[: len(good) // 2], "empty": b""}[damage]
    path = tmp_path / "damaged.pt"
    path.write_bytes(data)

    upload = upload_file(user, path)

    assert upload.status == WeightsUpload.Status.INVALID
    assert upload.error.startswith("This is not a PyTorch checkpoint")


def test_a_checkpoint_with_compressed_entries_is_refused_before_it_is_expanded(user: User, tmp_path: Path) -> None:
    stored = write_yolo_checkpoint(tmp_path / "stored.pt", "yolo11n")
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(stored) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))

    upload = upload_file(user, path)

    assert upload.status == WeightsUpload.Status.INVALID
    assert "entries are compressed" in upload.error


def test_a_plain_tensor_file_is_refused_as_holding_no_model(user: User, tmp_path: Path) -> None:
    path = tmp_path / "tensors.pt"
    torch.save({"weights": torch.zeros(3)}, path)

    upload = upload_file(user, path)

    assert upload.status == WeightsUpload.Status.INVALID
    assert "no ultralytics model" in upload.error


def test_a_real_checkpoint_is_accepted_with_its_task_classes_and_architecture(user: User, tmp_path: Path) -> None:
    path = write_yolo_checkpoint(tmp_path / "my-detector.pt", "yolo11s", names=["cat", "dog"])

    upload = upload_file(user, path)

    assert upload.status == WeightsUpload.Status.READY, upload.error
    assert (upload.task, upload.architecture, upload.class_names) == ("detect", "yolo11s", ["cat", "dog"])
    assert upload.file_name == "my-detector.pt"
    assert upload.weights.name == f"{upload.storage_prefix}/weights.pt"
    assert default_storage.exists(upload.weights.name)
    assert not default_storage.exists(f"{upload.storage_prefix}/upload.pt")


def test_the_rebuilt_checkpoint_is_our_own_and_keeps_every_weight(tmp_path: Path) -> None:
    source = write_yolo_checkpoint(tmp_path / "in.pt", "yolov8n", names=["a", "b", "c"])
    rebuilt = tmp_path / "out.pt"

    facts = sanitise(source, rebuilt, candidates=shipped_names())

    assert facts.architecture == "yolov8n"
    original = torch.load(source, weights_only=False)["model"].state_dict()
    loaded = torch.load(rebuilt, weights_only=False)
    assert loaded["hubsite"] == {"architecture": "yolov8n", "sanitised": True}
    assert loaded["model"].names == {0: "a", 1: "b", 2: "c"}
    ours = loaded["model"].state_dict()
    assert ours.keys() == original.keys()
    assert all(torch.equal(ours[key].float(), original[key].float()) for key in ours)


@pytest.mark.parametrize(
    ("architecture", "task"),
    [("yolo11n-pose", "pose"), ("yolo26n-seg", "segment"), ("yolov8n-obb", "obb"), ("yolo11n-cls", "classify")],
)
def test_other_tasks_are_matched_to_their_architecture(tmp_path: Path, architecture: str, task: str) -> None:
    source = write_yolo_checkpoint(tmp_path / "in.pt", architecture)

    facts = sanitise(source, tmp_path / "out.pt", candidates=shipped_names())

    assert (facts.task, facts.architecture) == (task, architecture)


def test_weights_of_another_task_than_wanted_are_refused(tmp_path: Path) -> None:
    source = write_yolo_checkpoint(tmp_path / "pose.pt", "yolo11n-pose")

    with pytest.raises(CheckpointRefused, match="This is a pose model; these weights must be detect"):
        sanitise(source, tmp_path / "out.pt", candidates=["yolo11n"])
    assert not (tmp_path / "out.pt").exists()


def test_a_scale_the_file_does_not_have_is_refused_as_unknown(tmp_path: Path) -> None:
    source = write_yolo_checkpoint(tmp_path / "s.pt", "yolo11s")

    with pytest.raises(CheckpointRefused, match="Unknown architecture"):
        sanitise(source, tmp_path / "out.pt", candidates=["yolo11n", "yolo11m"])


def test_the_allowlist_names_classes_not_modules() -> None:
    names = allowed_names()
    assert "ultralytics.nn.tasks.DetectionModel" in names
    assert "torch.nn.modules.conv.Conv2d" in names
    assert not any(name.startswith(("builtins.", "os.", "posix.", "subprocess.")) for name in names)
    assert "ultralytics.nn.tasks.WorldModel" not in names
