"""Hostile datasets that aim at the light worker's memory: each is refused with a
clear message, quickly, without the worker's memory growing.

The inputs that used to exhaust memory (a billion-laughs data.yaml, a huge nc) are
first read in a child process under an address-space cap, so a regression fails
the test instead of taking the machine down; every input then goes through the
real upload view and the validation actor's function."""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.helpers import BASE_DIR
from tests.training.datasets.helpers import good_files, problem_text, upload_and_validate, zip_bytes
from training.datasets import count_directory_entries, read_central_directory
from training.models import Dataset

CHILD_ADDRESS_SPACE = 1536 * 1024**2
MAX_RSS_GROWTH_KB = 150 * 1024

GOOD_YAML = "path: .\ntrain: images/train\nval: images/val\n"


def billion_laughs(levels: int = 9) -> str:
    """Nine levels of nine aliases each: 9**9 names once expanded, in under 1 KB."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        items = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{items}]")
    lines.append(f"names: [*l{levels - 1}, square, triangle]")
    return GOOD_YAML + "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "billion-laughs": (billion_laughs(), "anchors and aliases (& and *) are not allowed"),
    "huge-nc": ("nc: 2000000000\n", "declares 2,000,000,000 classes; the limit is 10,000"),
    "nested-list-name": ("names: [circle, [square, x], triangle]\n", "Class 1 in 'names:' is a list"),
    "nested-map-name": ("names: {0: circle, 1: {a: b}, 2: triangle}\n", "Class 1 in 'names:' is a mapping"),
    "too-many-names": ("names: [" + ", ".join(f"c{i}" for i in range(10_001)) + "]\n", "declares 10,001 classes"),
}


@contextmanager
def bounded_memory() -> Iterator[None]:
    """Fails if the block raises this process's peak memory by more than MAX_RSS_GROWTH_KB.

    While it runs, the address space may grow by 1 GiB at most: a regression then
    raises MemoryError (reported as an unexpected error) instead of exhausting the machine."""
    import ultralytics.data.utils  # noqa: F401 - validation imports it (and torch): load it first

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (address_space_in_use() + 1024**3, hard))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert time.monotonic() - started < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < MAX_RSS_GROWTH_KB


def address_space_in_use() -> int:
    status = Path("/proc/self/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmSize:"))
    return int(kilobytes) * 1024


def cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import django

    django.setup()
    from training.datasets import DatasetError, extract_archive, read_spec

    content = Path(sys.argv[2])
    content.mkdir()
    extract_archive(Path(sys.argv[1]), content)
    try:
        read_spec(content)
    except DatasetError as error:
        print("REFUSED", error)
    else:
        print("ACCEPTED")
    """
)


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_reading_a_hostile_data_yaml_fits_in_a_small_address_space(tmp_path: Path, case: str) -> None:
    text, message = HOSTILE_YAML[case]
    archive = tmp_path / "hostile.zip"
    archive.write_bytes(zip_bytes({**good_files(tmp_path), "data.yaml": text.encode()}))
    assert archive.stat().st_size < 200_000

    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(archive), str(tmp_path / "content")],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings"},
        preexec_fn=cap_address_space,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.startswith("REFUSED"), child.stdout
    assert message in child.stdout
    assert time.monotonic() - started < 60


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_a_hostile_data_yaml_makes_the_dataset_invalid(owner_client: Client, tmp_path: Path, case: str) -> None:
    text, message = HOSTILE_YAML[case]
    data = zip_bytes({**good_files(tmp_path), "data.yaml": text.encode()})
    with bounded_memory():
        dataset = upload_and_validate(owner_client, data)
    assert dataset.status == Dataset.Status.INVALID
    assert message in problem_text(dataset)


@pytest.mark.django_db
def test_an_oversized_data_yaml_is_refused_before_it_is_parsed(
    owner_client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_YAML_BYTES = 2000
    text = GOOD_YAML + "names: [circle, square, triangle]\n" + "# padding\n" * 300
    dataset = upload_and_validate(owner_client, zip_bytes({**good_files(tmp_path), "data.yaml": text.encode()}))
    assert dataset.status == Dataset.Status.INVALID
    assert "data.yaml is larger than 2.0 KB" in problem_text(dataset)


@pytest.mark.django_db
def test_an_oversized_label_file_is_refused(owner_client: Client, tmp_path: Path, settings: SettingsWrapper) -> None:
    settings.DATASET_MAX_LABEL_BYTES = 1000
    files = good_files(tmp_path)
    files["labels/train/img_00001.txt"] = b"0 0.5 0.5 0.2 0.2" + b" " * 1000 + b"\n"
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert dataset.status == Dataset.Status.INVALID
    assert "labels/train/img_00001.txt:None: This label file is larger than 1000 bytes" in problem_text(dataset)


@pytest.mark.django_db
def test_a_label_file_full_of_bad_lines_reports_a_bounded_number_of_them(owner_client: Client, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    files["labels/train/img_00001.txt"] = b"not a label\n" * 5000
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert dataset.status == Dataset.Status.INVALID
    reported = [p for p in dataset.errors if p["file"] == "labels/train/img_00001.txt"]
    assert len(reported) == 21
    assert reported[-1]["message"] == "Checking stopped after 20 bad lines in this file."


def set_declared_entries(data: bytes, count: int) -> bytes:
    """The zip with its end record claiming ``count`` entries (the directory unchanged)."""
    patched = bytearray(data)
    at = patched.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", patched, at + 8, count, count)
    return bytes(patched)


@pytest.mark.django_db
def test_a_zip_whose_end_record_claims_too_many_entries_is_refused(
    owner_client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_FILES = 20  # 13 files: fine; at most 1,040 entries
    data = set_declared_entries(zip_bytes(good_files(tmp_path)), 65_535)
    with bounded_memory():
        dataset = upload_and_validate(owner_client, data)
    assert dataset.status == Dataset.Status.INVALID
    assert problem_text(dataset) == (
        ":None: The zip holds 65,535 entries (files and folders); at most 1,040 are allowed "
        "(the limit is 20 files). Upload a smaller dataset."
    )


@pytest.mark.django_db
def test_a_zip_that_hides_its_entries_behind_a_small_count_is_counted_entry_by_entry(
    owner_client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_FILES = 20
    files = good_files(tmp_path)
    junk = {f"__MACOSX/._{index}": b"" for index in range(1100)}  # skipped, but entries all the same
    data = set_declared_entries(zip_bytes({**files, **junk}), len(files))
    dataset = upload_and_validate(owner_client, data)
    assert dataset.status == Dataset.Status.INVALID
    assert "The zip holds more than 1,040 entries" in problem_text(dataset)


def test_the_central_directory_is_read_from_zip64_end_records(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as opened:
        for index in range(0x10000 + 5):  # past the 16-bit count: zipfile writes zip64 end records
            opened.writestr(f"{index}", b"")
    directory = read_central_directory(archive)
    assert directory is not None
    assert directory.declared_entries == 0x10005
    assert count_directory_entries(archive, directory, limit=10**6) == 0x10005
    assert count_directory_entries(archive, directory, limit=100) == 101

    prefixed = tmp_path / "prefixed.zip"  # a self-extracting stub in front moves every offset
    prefixed.write_bytes(b"#!stub\n" * 10 + zip_bytes({"a": b"1", "b": b"2"}))
    directory = read_central_directory(prefixed)
    assert directory is not None
    assert count_directory_entries(prefixed, directory, limit=10) == 2


def test_a_file_without_an_end_record_has_no_directory(tmp_path: Path) -> None:
    path = tmp_path / "truncated.zip"
    path.write_bytes(zip_bytes({"a": b"1" * 100})[:-30])
    assert read_central_directory(path) is None
    assert zipfile.is_zipfile(io.BytesIO(path.read_bytes())) is False
