"""A training machine's local copies of datasets, extracted once per dataset uid under
DATASET_CACHE_DIR, bounded by DATASET_CACHE_MAX_BYTES (least recently used first,
never a copy a process holds)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from django.conf import settings

from training.datasets.archive import extract_archive
from training.datasets.problems import dataset_error
from training.datasets.spec import read_spec, relative_name, training_yaml_text
from training.datasets.storage import download_archive
from training.datasets.task_choice import find_classify_root
from training.models import Dataset

CACHE_MARKER = "hubsite-data.yaml"  # present once an entry is complete; its mtime is the entry's last use
CACHE_SIZE_FILE = "hubsite-size"  # the entry's extracted bytes


@contextmanager
def local_copy(dataset: Dataset, cache_root: Path) -> Iterator[Path]:
    """The dataset extracted under ``cache_root/<uid>/``; yields what ultralytics takes as
    ``data=`` for the dataset's task: for detect, segment, pose and obb the path of a
    clean data.yaml holding absolute paths (with kpt_shape and flip_idx for pose), for
    classify the absolute path of the folder holding train/ and val/. The entry cannot
    be evicted while the block runs (a shared lock on ``cache_root/<uid>.lock``,
    honoured by every process).

    Extracted once per dataset uid: into a temporary folder, then renamed into place,
    so a crash never leaves a half copy that looks finished. Same safety checks as
    validation. Raises DatasetError if the archive is unusable. A new entry makes the
    least recently used ones not in use leave the cache while it is over
    DATASET_CACHE_MAX_BYTES."""
    cache_root = Path(cache_root).resolve()
    cache_root.mkdir(parents=True, exist_ok=True)
    lock = _lock(_entry_lock_path(cache_root, str(dataset.uid)), fcntl.LOCK_SH)
    assert lock is not None  # a blocking lock is always acquired
    try:
        marker, created = _cached_or_extracted(dataset, cache_root)
        if created:
            evict_cache(cache_root, settings.DATASET_CACHE_MAX_BYTES)
        yield _training_data(marker, dataset)
    finally:
        os.close(lock)


def prepare_local_copy(dataset: Dataset, cache_root: Path) -> Path:
    """:func:`local_copy` without holding the entry: a later eviction may remove it, so
    a process that trains on it should use ``local_copy`` for the whole run."""
    with local_copy(dataset, cache_root) as data:
        return data


def _training_data(marker: Path, dataset: Dataset) -> Path:
    """The marker itself (a data.yaml), or for classification the folder it names."""
    if dataset.task != Dataset.Task.CLASSIFY:
        return marker
    return Path(yaml.safe_load(marker.read_text(encoding="utf-8"))["path"])


def _marker_text(dataset: Dataset, content: Path, location: Path) -> str:
    """The cache marker's text: the training data.yaml, or for classification a YAML
    naming the folder that holds train/ (where it will be once the entry is in place)."""
    if dataset.task != Dataset.Task.CLASSIFY:
        return training_yaml_text(read_spec(content), content, location=location)
    root = find_classify_root(content.resolve())
    if root is None:
        raise dataset_error("The classification dataset has no train/ folder.")
    path = os.path.normpath(location / relative_name(root, content.resolve()))
    return yaml.safe_dump({"task": "classify", "path": path})


def _cached_or_extracted(dataset: Dataset, cache_root: Path) -> tuple[Path, bool]:
    final = cache_root / str(dataset.uid)
    data_yaml = final / CACHE_MARKER
    if data_yaml.is_file():
        os.utime(data_yaml)  # used now: the last to be evicted
        return data_yaml, False
    work = Path(tempfile.mkdtemp(prefix=f".{dataset.uid}.", dir=cache_root))
    try:
        archive = download_archive(dataset, work / "archive.zip")
        content = work / "content"
        content.mkdir()
        size = extract_archive(archive, content)
        archive.unlink()
        # Paths are written for the final location, so the copy is ready once renamed.
        text = _marker_text(dataset, content, final / "content")
        (work / CACHE_SIZE_FILE).write_text(str(size), encoding="ascii")
        (work / CACHE_MARKER).write_text(text, encoding="utf-8")
        try:
            work.rename(final)
        except OSError:
            if not data_yaml.is_file():  # not another process winning the race
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return data_yaml, True


def evict_cache(cache_root: Path, max_bytes: int) -> list[str]:
    """Remove the least recently used complete entries that no process holds until the
    cache is within ``max_bytes``, and the leftovers of interrupted extractions and
    evictions; returns the uids removed. One evictor at a time per cache."""
    cache_root = Path(cache_root)
    guard = _lock(cache_root / ".evict.lock", fcntl.LOCK_EX)
    assert guard is not None
    try:
        entries: list[tuple[float, str, int]] = []
        for marker in cache_root.glob(f"*/{CACHE_MARKER}"):
            with contextlib.suppress(FileNotFoundError):
                entries.append((marker.stat().st_mtime, marker.parent.name, _entry_size(marker.parent)))
        total = sum(size for _, _, size in entries)
        removed: list[str] = []
        for _, uid, size in sorted(entries):
            if total <= max_bytes:
                break
            if remove_cached_copy(cache_root, uid):
                total -= size
                removed.append(uid)
        _remove_leftovers(cache_root)
        return removed
    finally:
        os.close(guard)


def remove_cached_copy(cache_root: Path, uid: str) -> bool:
    """Remove the entry of dataset ``uid`` unless a process holds it; True if it is gone."""
    cache_root = Path(cache_root)
    lock_path = _entry_lock_path(cache_root, uid)
    if not lock_path.exists() and not (cache_root / uid).exists():
        return True
    lock = _lock(lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if lock is None:
        return False  # in use, or being extracted
    try:
        entry = cache_root / uid
        if entry.exists():
            doomed = cache_root / f".evicting.{uid}.{secrets.token_hex(4)}"
            entry.rename(doomed)  # one step: no reader ever sees half an entry
            shutil.rmtree(doomed, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        return True
    finally:
        os.close(lock)


def _remove_leftovers(cache_root: Path) -> None:
    """Temporary folders of extractions whose process is gone (their entry's lock is
    free), half-removed entries, and lock files without an entry."""
    for path in cache_root.iterdir():
        name = path.name
        if name.startswith(".evicting."):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".") and path.is_dir():
            uid = name[1:].split(".", 1)[0]
            lock = _lock(_entry_lock_path(cache_root, uid), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if lock is not None:
                try:
                    shutil.rmtree(path, ignore_errors=True)
                finally:
                    os.close(lock)
        elif name.endswith(".lock") and not name.startswith(".") and not (cache_root / name[: -len(".lock")]).exists():
            remove_cached_copy(cache_root, name[: -len(".lock")])


def _entry_lock_path(cache_root: Path, uid: str) -> Path:
    return cache_root / f"{uid}.lock"


def _entry_size(entry: Path) -> int:
    try:
        return int((entry / CACHE_SIZE_FILE).read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return sum(path.stat().st_size for path in entry.rglob("*") if path.is_file())


def _lock(path: Path, operation: int) -> int | None:
    """A descriptor of ``path`` holding an flock (``operation``); None if LOCK_NB was given
    and another holds it. Retries when the file was removed and recreated meanwhile (an
    evictor deletes an entry's lock file while holding it)."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, operation)
            current = os.stat(path).st_ino
        except BlockingIOError:
            os.close(descriptor)
            return None
        except FileNotFoundError:
            current = -1
        except BaseException:
            os.close(descriptor)
            raise
        if current == os.fstat(descriptor).st_ino:
            return descriptor
        os.close(descriptor)
