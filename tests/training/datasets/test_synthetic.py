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


def _label_rows(archive: zipfile.ZipFile) -> list[list[float]]:
    return [
        [float(value) for value in line.split()]
        for name in archive.namelist()
        if name.startswith("labels/")
        for line in archive.read(name).decode().splitlines()
    ]


def test_segmentation_labels_are_polygons_inside_the_image(tmp_path: Path) -> None:
    path = write_synthetic_dataset(tmp_path / "s.zip", train_images=6, val_images=2, image_size=64, task="segment")
    with zipfile.ZipFile(path) as archive:
        rows = _label_rows(archive)
    assert rows
    for row in rows:
        assert len(row) >= 7
        assert len(row) % 2 == 1
        assert all(0 <= value <= 1 for value in row[1:])


def test_oriented_box_labels_are_four_corners_of_a_rectangle(tmp_path: Path) -> None:
    size = 128
    path = write_synthetic_dataset(tmp_path / "o.zip", train_images=6, val_images=2, image_size=size, task="obb")
    with zipfile.ZipFile(path) as archive:
        rows = _label_rows(archive)
    assert rows
    for row in rows:
        assert len(row) == 9
        corners = [(row[i] * size, row[i + 1] * size) for i in range(1, 9, 2)]
        sides = [
            ((corners[i][0] - corners[i - 1][0]) ** 2 + (corners[i][1] - corners[i - 1][1]) ** 2) ** 0.5
            for i in range(4)
        ]
        assert sides[0] == pytest.approx(sides[2], abs=0.01)
        assert sides[1] == pytest.approx(sides[3], abs=0.01)
        diagonals = [
            ((corners[2][0] - corners[0][0]) ** 2 + (corners[2][1] - corners[0][1]) ** 2) ** 0.5,
            ((corners[3][0] - corners[1][0]) ** 2 + (corners[3][1] - corners[1][1]) ** 2) ** 0.5,
        ]
        assert diagonals[0] == pytest.approx(diagonals[1], abs=0.01)  # a parallelogram with equal diagonals


def test_pose_labels_hold_a_box_and_three_visible_keypoints_inside_it(tmp_path: Path) -> None:
    path = write_synthetic_dataset(tmp_path / "p.zip", train_images=6, val_images=2, image_size=64, task="pose")
    with zipfile.ZipFile(path) as archive:
        data_yaml = archive.read("data.yaml").decode()
        rows = _label_rows(archive)
    assert "kpt_shape: [3, 3]" in data_yaml
    assert "flip_idx: [0, 2, 1]" in data_yaml
    assert rows
    for row in rows:
        assert len(row) == 5 + 3 * 3
        _, x, y, w, h = row[:5]
        for index in range(5, 14, 3):
            kx, ky, visibility = row[index : index + 3]
            assert visibility == 2
            assert x - w / 2 - 1e-6 <= kx <= x + w / 2 + 1e-6
            assert y - h / 2 - 1e-6 <= ky <= y + h / 2 + 1e-6


def test_classification_has_a_folder_per_class_in_each_split_and_no_data_yaml(tmp_path: Path) -> None:
    path = write_synthetic_dataset(tmp_path / "c.zip", train_images=6, val_images=3, image_size=48, task="classify")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "data.yaml" not in names
    for split, count in (("train", 6), ("val", 3)):
        in_split = [Path(name) for name in names if name.startswith(f"{split}/")]
        assert len(in_split) == count
        assert {image.parent.name for image in in_split} == {"circle", "square", "triangle"}


def test_classification_refuses_fewer_images_than_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one image per class"):
        write_synthetic_dataset(tmp_path / "c.zip", train_images=6, val_images=2, classes=3, task="classify")


def test_the_command_writes_a_dataset_of_the_given_task(tmp_path: Path) -> None:
    out = tmp_path / "pose.zip"
    call_command("make_synthetic_dataset", str(out), "--train", "2", "--val", "1", "--task", "pose")
    with zipfile.ZipFile(out) as archive:
        assert "kpt_shape" in archive.read("data.yaml").decode()
