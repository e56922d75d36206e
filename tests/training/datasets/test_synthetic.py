from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from training.datasets.synthetic import write_synthetic_dataset


def test_it_writes_a_hub_format_zip_with_images_labels_and_names(tmp_path: Path) -> None:
    path = write_synthetic_dataset(tmp_path / "shapes.zip", train_images=5, val_images=3, image_size=64, classes=4)

    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert "data.yaml" in names
        for split, count in (("train", 5), ("val", 3)):
            images = sorted(n for n in names if n.startswith(f"images/{split}/"))
            labels = sorted(n for n in names if n.startswith(f"labels/{split}/"))
            assert len(images) == count
            assert [Path(n).stem for n in images] == [Path(n).stem for n in labels]
        data_yaml = archive.read("data.yaml").decode()
        assert "train: images/train" in data_yaml
        assert "3: diamond" in data_yaml
        image = Image.open(io.BytesIO(archive.read("images/train/img_00000.jpg")))
        assert image.size == (64, 64)
        rows = [
            line.split() for n in names if n.startswith("labels/") for line in archive.read(n).decode().splitlines()
        ]
    assert rows
    for row in rows:
        assert len(row) == 5
        assert 0 <= int(row[0]) < 4
        assert all(0 <= float(value) <= 1 for value in row[1:])


def test_it_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = write_synthetic_dataset(tmp_path / "a.zip", train_images=2, val_images=1, seed=7)
    second = write_synthetic_dataset(tmp_path / "b.zip", train_images=2, val_images=1, seed=7)
    third = write_synthetic_dataset(tmp_path / "c.zip", train_images=2, val_images=1, seed=8)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != third.read_bytes()


def test_it_refuses_out_of_range_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="classes"):
        write_synthetic_dataset(tmp_path / "x.zip", classes=0)
    with pytest.raises(ValueError, match="image_size"):
        write_synthetic_dataset(tmp_path / "x.zip", image_size=8)


def test_the_command_writes_the_zip_with_the_given_sizes(tmp_path: Path) -> None:
    out = tmp_path / "demo.zip"
    call_command("make_synthetic_dataset", str(out), "--train", "3", "--val", "2", "--size", "48", "--classes", "2")
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    assert len([n for n in names if n.startswith("images/train/")]) == 3
    assert len([n for n in names if n.startswith("images/val/")]) == 2


def test_the_command_reports_bad_options_plainly(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="classes must be between"):
        call_command("make_synthetic_dataset", str(tmp_path / "x.zip"), "--classes", "99")
