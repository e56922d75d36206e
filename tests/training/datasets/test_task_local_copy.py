"""Synthetic datasets of every task: validated ready for their task, and the worker's
local copy is what ultralytics takes as ``data=`` for it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml
from django.test import Client

from hubsite.models import User
from tests.training.datasets.helpers import Files, zip_bytes
from tests.training.datasets.test_local_copy import stored_dataset
from tests.training.datasets.test_tasks import assert_ready, upload_as
from training.datasets import prepare_local_copy
from training.datasets.synthetic import write_synthetic_dataset
from training.models import Dataset

pytestmark = pytest.mark.django_db

Task = Dataset.Task
YAML_TASKS = (Task.DETECT, Task.SEGMENT, Task.POSE, Task.OBB)


def synthetic_files(tmp_path: Path, task: str) -> Files:
    path = write_synthetic_dataset(tmp_path / f"{task}.zip", train_images=6, val_images=3, image_size=64, task=task)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize("task", [Task.DETECT, Task.SEGMENT, Task.POSE, Task.CLASSIFY])
def test_a_synthetic_dataset_is_read_as_its_task(owner_client: Client, tmp_path: Path, task: str) -> None:
    dataset = upload_as(owner_client, synthetic_files(tmp_path, task))
    assert_ready(dataset, task)
    assert dataset.class_names == ["circle", "square", "triangle"]
    assert dataset.stats["splits"]["train"]["images"] == 6


def test_synthetic_oriented_boxes_are_ready_once_chosen(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_as(owner_client, synthetic_files(tmp_path, Task.OBB), Task.OBB)
    assert_ready(dataset, Task.OBB)


@pytest.mark.parametrize("task", YAML_TASKS)
def test_the_local_copy_of_a_yaml_task_is_a_data_yaml_ultralytics_accepts(
    user: User, tmp_path: Path, task: str
) -> None:
    from ultralytics.data.utils import check_det_dataset

    dataset = stored_dataset(user, _zip(tmp_path, task))
    Dataset.objects.filter(pk=dataset.pk).update(task=task)
    dataset.refresh_from_db()

    data_yaml = prepare_local_copy(dataset, tmp_path / "cache")

    data = yaml.safe_load(data_yaml.read_text())
    if task == Task.POSE:
        assert (data["kpt_shape"], data["flip_idx"]) == ([3, 3], [0, 2, 1])
    else:
        assert "kpt_shape" not in data
    checked = check_det_dataset(str(data_yaml), autodownload=False)
    assert checked["nc"] == 3
    assert checked.get("kpt_shape") == data.get("kpt_shape")


def test_the_local_copy_of_a_classification_dataset_is_its_folder(user: User, tmp_path: Path) -> None:
    from ultralytics.data.utils import check_cls_dataset

    files = {f"animals/{name}": data for name, data in synthetic_files(tmp_path, Task.CLASSIFY).items()}
    dataset = stored_dataset(user, zip_bytes(files))
    Dataset.objects.filter(pk=dataset.pk).update(task=Task.CLASSIFY)
    dataset.refresh_from_db()
    cache = tmp_path / "cache"

    folder = prepare_local_copy(dataset, cache)

    assert folder == cache / str(dataset.uid) / "content" / "animals"
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["circle", "square", "triangle"]
    checked = check_cls_dataset(str(folder))
    assert (checked["nc"], checked["val"]) == (3, folder / "val")
    assert prepare_local_copy(dataset, cache) == folder  # the cached entry answers the same


def _zip(tmp_path: Path, task: str) -> bytes:
    path = write_synthetic_dataset(tmp_path / f"{task}.zip", train_images=4, val_images=3, image_size=64, task=task)
    return path.read_bytes()
