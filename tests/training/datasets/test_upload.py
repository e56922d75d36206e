"""Every bad input through the real upload view and the validation actor's function
(run in-process here; test_datasets_worker.py goes through a real worker)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.training.datasets.helpers import (
    Files,
    all_storage_keys,
    good_files,
    problem_text,
    upload,
    upload_and_validate,
    zip_bytes,
)
from training.datasets import archive_key, storage_keys
from training.models import Dataset

pytestmark = pytest.mark.django_db

GOOD_YAML = b"path: .\ntrain: images/train\nval: images/val\nnames:\n  0: circle\n  1: square\n  2: triangle\n"


def with_yaml(tmp_path: Path, text: bytes) -> bytes:
    return zip_bytes({**good_files(tmp_path), "data.yaml": text})


def with_label(tmp_path: Path, line: bytes) -> bytes:
    files = good_files(tmp_path)
    files["labels/train/img_00001.txt"] = b"0 0.5 0.5 0.2 0.2\n" + line + b"\n"
    return zip_bytes(files)


def assert_invalid(dataset: Dataset, *fragments: str, file: str | None = None) -> None:
    assert dataset.status == Dataset.Status.INVALID, dataset.errors
    text = problem_text(dataset)
    for fragment in fragments:
        assert fragment in text, text
    if file is not None:
        assert file in {p["file"] for p in dataset.errors}, text


def assert_only_archive_stored(dataset: Dataset) -> None:
    assert storage_keys(dataset.storage_prefix) == [archive_key(dataset)]


# --- the archive -------------------------------------------------------------------------------


def test_it_reports_a_file_that_is_not_a_zip(owner_client: Client) -> None:
    dataset = upload_and_validate(owner_client, b"just some text, not an archive\n" * 10, filename="notes.zip")
    assert_invalid(dataset, "not a zip archive")
    assert_only_archive_stored(dataset)


def test_it_reports_a_truncated_zip(owner_client: Client, tmp_path: Path) -> None:
    data = zip_bytes(good_files(tmp_path))
    dataset = upload_and_validate(owner_client, data[: len(data) // 2])
    assert_invalid(dataset, "damaged or incomplete")
    assert_only_archive_stored(dataset)


def test_it_reports_a_corrupt_zip_whose_data_fails_its_checksum(owner_client: Client, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    files["labels/train/img_00000.txt"] = b"0 0.111111 0.222222 0.3 0.3\n"
    data = zip_bytes(files, compression=zipfile.ZIP_STORED).replace(b"0.111111", b"0.999999", 1)
    dataset = upload_and_validate(owner_client, data)
    assert_invalid(dataset, "damaged or incomplete", "CRC")
    assert_only_archive_stored(dataset)


def test_it_refuses_entries_with_dot_dot(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, zip_bytes({**good_files(tmp_path), "../../evil.txt": b"x"}))
    assert_invalid(dataset, "points outside the dataset", file="../../evil.txt")
    assert_only_archive_stored(dataset)


def test_it_refuses_entries_with_absolute_paths(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, zip_bytes({**good_files(tmp_path), "/etc/evil.txt": b"x"}))
    assert_invalid(dataset, "absolute path", file="/etc/evil.txt")


def test_it_refuses_symbolic_links(owner_client: Client, tmp_path: Path) -> None:
    data = zip_bytes(good_files(tmp_path), links={"images/train/link.jpg": "/etc/passwd"})
    dataset = upload_and_validate(owner_client, data)
    assert_invalid(dataset, "symbolic link", file="images/train/link.jpg")


def test_it_refuses_a_zip_bomb_by_compression_ratio(owner_client: Client, tmp_path: Path) -> None:
    data = zip_bytes({**good_files(tmp_path), "images/train/bomb.jpg": bytes(20 * 1024 * 1024)})
    assert len(data) < 200_000
    dataset = upload_and_validate(owner_client, data)
    assert_invalid(dataset, "zip bomb", file="images/train/bomb.jpg")
    assert_only_archive_stored(dataset)


def test_it_refuses_a_zip_over_the_uncompressed_size_limit(
    owner_client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_UNCOMPRESSED_BYTES = 5_000
    dataset = upload_and_validate(owner_client, zip_bytes(good_files(tmp_path)))
    assert_invalid(dataset, "The zip unpacks to", "the limit is 4.9 KB")


def test_it_refuses_a_zip_with_too_many_files(owner_client: Client, tmp_path: Path, settings: SettingsWrapper) -> None:
    settings.DATASET_MAX_FILES = 5
    dataset = upload_and_validate(owner_client, zip_bytes(good_files(tmp_path)))
    assert_invalid(dataset, "The zip holds 13 files; the limit is 5")


def test_it_refuses_an_upload_over_the_size_limit_before_storing_anything(
    owner_client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    before = all_storage_keys()
    response = upload(owner_client, zip_bytes(good_files(tmp_path)))
    assert response.status_code == 413
    assert "larger than the 1000 bytes upload limit" in response.content.decode()
    assert not Dataset.objects.exists()
    assert all_storage_keys() == before


def test_the_upload_limit_answers_htmx_with_the_form_fragment(
    owner_client: Client, tmp_path: Path, settings: SettingsWrapper
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    response = owner_client.post(
        "/datasets/upload/",
        {"name": "big", "file": io.BytesIO(zip_bytes(good_files(tmp_path)))},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 413
    assert body.lstrip().startswith('<form id="upload-form"')
    assert "upload limit" in body


# --- data.yaml ---------------------------------------------------------------------------------


def test_it_reports_a_missing_data_yaml(owner_client: Client, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    del files["data.yaml"]
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert_invalid(dataset, "No data.yaml was found")


def test_it_finds_data_yaml_inside_one_top_folder(owner_client: Client, tmp_path: Path) -> None:
    files = {f"shapes/{name}": data for name, data in good_files(tmp_path).items()}
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert dataset.status == Dataset.Status.READY, dataset.errors
    assert dataset.stats["splits"]["train"]["images"] == 4


def test_it_reports_an_unparsable_data_yaml_with_its_line(owner_client: Client, tmp_path: Path) -> None:
    broken = b"train: images/train\nval: [unclosed\nnames: {0: a\n"
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, broken))
    assert_invalid(dataset, "not valid YAML", file="data.yaml")
    assert dataset.errors[0]["line"] is not None


def test_it_reports_a_yaml_path_outside_the_dataset(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, GOOD_YAML.replace(b"path: .", b"path: ../../..")))
    assert_invalid(dataset, "'path: ../../..' points outside the dataset", file="data.yaml")


def test_it_reports_an_absolute_yaml_path(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, GOOD_YAML.replace(b"path: .", b"path: /etc")))
    assert_invalid(dataset, "'path: /etc' is an absolute path")


def test_it_reports_a_split_path_outside_the_dataset(owner_client: Client, tmp_path: Path) -> None:
    text = GOOD_YAML.replace(b"train: images/train", b"train: ../../../../etc")
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, text))
    assert_invalid(dataset, "'train: ../../../../etc' points outside the dataset")


def test_it_reports_a_missing_train_split(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, GOOD_YAML.replace(b"train: images/train\n", b"")))
    assert_invalid(dataset, "data.yaml has no 'train:' split")


def test_it_reports_a_missing_val_split(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, GOOD_YAML.replace(b"val: images/val\n", b"")))
    assert_invalid(dataset, "data.yaml has no 'val:' split")


def test_it_reports_a_split_folder_that_is_not_in_the_zip(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_and_validate(owner_client, with_yaml(tmp_path, GOOD_YAML.replace(b"images/val", b"images/valid")))
    assert_invalid(dataset, "The val folder 'images/valid' named in data.yaml is not in the zip")


# --- labels and images -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"0 0.5 0.5 0.2", "This line has 4 values; a detection label needs 5"),
        (b"0 0.5 abc 0.2 0.2", "'abc' is not a number"),
        (b"7 0.5 0.5 0.2 0.2", "Class 7 is not one of the 3 classes in data.yaml (0 to 2)"),
        (b"1 1.5 0.5 0.2 0.2", "The box coordinates must be between 0 and 1"),
        (b"1 0.5 0.5 -0.3 0.2", "The box coordinates must be between 0 and 1"),
    ],
    ids=["wrong-field-count", "not-a-number", "class-outside-names", "coordinate-over-1", "coordinate-negative"],
)
def test_it_reports_a_bad_label_line_with_its_file_and_line(
    owner_client: Client, tmp_path: Path, line: bytes, message: str
) -> None:
    dataset = upload_and_validate(owner_client, with_label(tmp_path, line))
    assert_invalid(dataset, message)
    problem = next(p for p in dataset.errors if message in p["message"])
    assert (problem["file"], problem["line"]) == ("labels/train/img_00001.txt", 2)
    assert_only_archive_stored(dataset)


def test_it_reports_an_image_that_does_not_decode(owner_client: Client, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    files["images/val/img_00001.jpg"] = files["images/val/img_00001.jpg"][:300]
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert_invalid(dataset, "This image cannot be decoded", file="images/val/img_00001.jpg")


def test_it_counts_an_image_without_labels_as_background(owner_client: Client, tmp_path: Path) -> None:
    files = good_files(tmp_path)
    del files["labels/train/img_00002.txt"]
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert dataset.status == Dataset.Status.READY, dataset.errors
    assert dataset.stats["splits"]["train"] == {
        "images": 4,
        "background": 1,
        "instances": sum(len(files[f"labels/train/img_0000{i}.txt"].decode().split("\n")) - 1 for i in (0, 1, 3)),
    }


def test_it_reports_a_label_file_without_an_image(owner_client: Client, tmp_path: Path) -> None:
    files = {**good_files(tmp_path), "labels/train/orphan.txt": b"0 0.5 0.5 0.1 0.1\n"}
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert dataset.status == Dataset.Status.READY
    warnings = dataset.stats["warnings"]
    assert warnings == [
        {"file": "labels/train/orphan.txt", "line": None, "message": warnings[0]["message"]},
    ]
    assert "has no image with the same name" in warnings[0]["message"]
    page = owner_client.get(f"/datasets/{dataset.uid}/").content.decode()
    assert "labels/train/orphan.txt" in page


def test_it_reports_an_empty_dataset(owner_client: Client) -> None:
    files: Files = {"data.yaml": GOOD_YAML, "images/train/.keep": b"", "images/val/.keep": b""}
    dataset = upload_and_validate(owner_client, zip_bytes(files))
    assert_invalid(dataset, "The dataset holds no images at all", "The train split (images/train) has no images")


def test_it_reports_an_empty_zip(owner_client: Client) -> None:
    dataset = upload_and_validate(owner_client, zip_bytes({}))
    assert_invalid(dataset, "The zip is empty")


# --- a good one --------------------------------------------------------------------------------


def test_a_good_synthetic_dataset_becomes_ready_with_the_right_counts(owner_client: Client, tmp_path: Path) -> None:
    files = good_files(tmp_path, train=6, val=3, classes=3)
    expected = [0, 0, 0]
    for name, data in files.items():
        if name.startswith("labels/"):
            for line in data.decode().splitlines():
                expected[int(line.split()[0])] += 1

    dataset = upload_and_validate(owner_client, zip_bytes(files))

    assert dataset.status == Dataset.Status.READY, dataset.errors
    assert dataset.errors == []
    assert dataset.class_names == ["circle", "square", "triangle"]
    assert dataset.stats["images"] == 9
    assert dataset.stats["splits"]["train"]["images"] == 6
    assert dataset.stats["splits"]["val"]["images"] == 3
    assert list(dataset.stats["instances"].values()) == expected
    sample_keys = [s["key"] for s in dataset.stats["samples"]]
    assert sample_keys
    assert set(storage_keys(dataset.storage_prefix)) == {archive_key(dataset), *sample_keys}
