from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.training.datasets.helpers import good_files, zip_bytes
from training.datasets import DatasetError, archive_key, extract_archive, prepare_local_copy, storage_put
from training.models import Dataset


def stored_dataset(user: User, data: bytes) -> Dataset:
    dataset = Dataset(owner=user, name="shapes")
    dataset.archive.name = storage_put(archive_key(dataset), data)
    dataset.archive_size = len(data)
    dataset.save()
    return dataset


@pytest.mark.django_db
def test_it_extracts_once_and_writes_a_data_yaml_with_absolute_paths(user: User, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    # The whole dataset inside one top folder, as many zips are made; a hostile download: key is dropped.
    nested = {f"shapes/{name}": data for name, data in files.items()}
    nested["shapes/data.yaml"] += b"download: import os; os.system('echo owned')\n"
    dataset = stored_dataset(user, zip_bytes(nested))
    cache = tmp_path / "cache"

    data_yaml = prepare_local_copy(dataset, cache)

    assert data_yaml.parent == cache / str(dataset.uid)
    data = yaml.safe_load(data_yaml.read_text())
    assert Path(data["path"]).is_absolute()
    assert Path(data["train"]).is_dir()
    assert len(list(Path(data["train"]).glob("*.jpg"))) == 4
    assert len(list(Path(data["val"]).glob("*.jpg"))) == 2
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle"}
    assert "download" not in data
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [str(dataset.uid)]  # no temporary folder left

    # A second call reuses the copy, even with the archive gone from storage.
    default_storage.delete(archive_key(dataset))
    assert prepare_local_copy(dataset, cache) == data_yaml


@pytest.mark.django_db
def test_ultralytics_accepts_the_local_copy(user: User, tmp_path: Path) -> None:
    from ultralytics.data.utils import check_det_dataset

    dataset = stored_dataset(user, zip_bytes(good_files(tmp_path)))
    data_yaml = prepare_local_copy(dataset, tmp_path / "cache")
    checked = check_det_dataset(str(data_yaml), autodownload=False)
    assert checked["nc"] == 3


@pytest.mark.django_db
def test_it_refuses_an_unsafe_archive_and_leaves_no_copy(user: User, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    buffer = zip_bytes({**files, "../escape.txt": b"x"})
    dataset = stored_dataset(user, buffer)
    cache = tmp_path / "cache"

    with pytest.raises(DatasetError, match="outside the dataset"):
        prepare_local_copy(dataset, cache)

    assert [p for p in cache.iterdir() if p.is_dir()] == []
    assert not (tmp_path / "escape.txt").exists()


def test_extraction_never_writes_outside_the_destination(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("data.yaml", "names: [a]\n")
        opened.writestr("/tmp/absolute.txt", "x")  # noqa: S108 - the attack under test
        opened.writestr("a/../../up.txt", "x")
    destination = tmp_path / "out"
    destination.mkdir()

    with pytest.raises(DatasetError) as raised:
        extract_archive(archive, destination)

    assert {p.file for p in raised.value.problems} == {"/tmp/absolute.txt", "a/../../up.txt"}  # noqa: S108
    assert list(destination.iterdir()) == []
    assert not (tmp_path / "up.txt").exists()


def test_content_file_is_accepted_by_storage_put(db: None) -> None:
    key = "datasets/test/storage-put.bin"
    storage_put(key, b"one")
    storage_put(key, ContentFile(b"two").read())
    with default_storage.open(key) as stored:
        assert stored.read() == b"two"
    default_storage.delete(key)
