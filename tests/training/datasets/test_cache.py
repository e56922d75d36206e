"""The training workers' dataset cache: bounded by DATASET_CACHE_MAX_BYTES with least
recently used eviction, never evicting an entry a process holds, emptied of a
dataset when it is deleted. Real zips in storage, real files on disk, a real second
process holding a lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from hubsite.models import User
from tests.training.datasets.helpers import good_files, zip_bytes
from training.datasets import (
    CACHE_MARKER,
    CACHE_SIZE_FILE,
    archive_key,
    delete_dataset,
    evict_cache,
    local_copy,
    prepare_local_copy,
    storage_put,
)
from training.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def archive(tmp_path: Path) -> bytes:
    return zip_bytes(good_files(tmp_path))


@pytest.fixture
def cache(tmp_path: Path, settings: SettingsWrapper) -> Path:
    settings.DATASET_CACHE_DIR = tmp_path / "cache"
    return Path(settings.DATASET_CACHE_DIR)


def stored(user: User, data: bytes, name: str) -> Dataset:
    dataset = Dataset(owner=user, name=name, status=Dataset.Status.READY)
    dataset.archive.name = storage_put(archive_key(dataset), data)
    dataset.archive_size = len(data)
    dataset.save()
    return dataset


def entries(cache: Path) -> set[str]:
    return {path.parent.name for path in cache.glob(f"*/{CACHE_MARKER}")}


def entry_size(cache: Path, dataset: Dataset) -> int:
    return int((cache / str(dataset.uid) / CACHE_SIZE_FILE).read_text())


def use(dataset: Dataset, cache: Path) -> None:
    prepare_local_copy(dataset, cache)
    time.sleep(0.02)  # distinct last-use times, even on coarse file-system clocks


def test_a_new_entry_evicts_the_least_recently_used_ones_beyond_the_limit(
    user: User, archive: bytes, cache: Path, settings: SettingsWrapper
) -> None:
    first, second, third = (stored(user, archive, name) for name in ("first", "second", "third"))
    use(first, cache)
    size = entry_size(cache, first)
    assert size == sum(p.stat().st_size for p in (cache / str(first.uid) / "content").rglob("*") if p.is_file())
    settings.DATASET_CACHE_MAX_BYTES = int(size * 2.5)  # room for two
    use(second, cache)
    use(first, cache)  # used again: second is now the least recently used

    use(third, cache)

    assert entries(cache) == {str(first.uid), str(third.uid)}
    assert not (cache / f"{second.uid}.lock").exists()
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == sorted([str(first.uid), str(third.uid)])
    use(second, cache)  # an evicted dataset is simply extracted again
    assert entries(cache) == {str(third.uid), str(second.uid)}


def test_an_entry_in_use_is_never_evicted(user: User, archive: bytes, cache: Path, settings: SettingsWrapper) -> None:
    settings.DATASET_CACHE_MAX_BYTES = 0
    training, other = stored(user, archive, "training"), stored(user, archive, "other")
    with local_copy(training, cache) as data_yaml:
        use(other, cache)  # over the limit: only `other` itself may go, and it is held while prepared
        assert data_yaml.is_file()
        assert evict_cache(cache, 0) == [str(other.uid)]
        assert entries(cache) == {str(training.uid)}
    assert evict_cache(cache, 0) == [str(training.uid)]
    assert entries(cache) == set()


def test_an_entry_held_by_another_process_is_never_evicted(
    user: User, archive: bytes, cache: Path, settings: SettingsWrapper
) -> None:
    dataset = stored(user, archive, "held")
    use(dataset, cache)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_SH); "
            "print('held', flush=True); time.sleep(60)",
            str(cache / f"{dataset.uid}.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert evict_cache(cache, 0) == []
        assert entries(cache) == {str(dataset.uid)}
    finally:
        holder.kill()
        holder.wait()
    assert evict_cache(cache, 0) == [str(dataset.uid)]


def test_leftovers_of_a_crashed_extraction_are_removed_once_nobody_holds_them(
    user: User, archive: bytes, cache: Path
) -> None:
    dataset = stored(user, archive, "crashed")
    cache.mkdir()
    leftover = cache / f".{dataset.uid}.abc123"
    (leftover / "content").mkdir(parents=True)
    (leftover / "content" / "big.bin").write_bytes(b"x" * 1000)
    with local_copy(dataset, cache):  # a live extraction of the same dataset holds its lock
        (cache / f".{dataset.uid}.live").mkdir()
        evict_cache(cache, 10**9)
        assert (cache / f".{dataset.uid}.live").exists()
    evict_cache(cache, 10**9)
    assert not leftover.exists()
    assert not (cache / f".{dataset.uid}.live").exists()
    assert entries(cache) == {str(dataset.uid)}


def test_deleting_a_dataset_removes_its_cached_copy(user: User, archive: bytes, cache: Path) -> None:
    kept, deleted = stored(user, archive, "kept"), stored(user, archive, "deleted")
    use(kept, cache)
    use(deleted, cache)

    delete_dataset(deleted)

    assert entries(cache) == {str(kept.uid)}
    assert not (cache / str(deleted.uid)).exists()
    assert not (cache / f"{deleted.uid}.lock").exists()
    assert os.listdir(cache / str(kept.uid) / "content")
