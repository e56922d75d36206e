from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from training import catalogue
from training.catalogue import PLATFORM_CONTROLLED_ARGS, TrainArgsError, validate_train_args
from training.datasets import IMAGE_SUFFIXES


def test_the_catalogue_holds_yolo11_yolo26_and_yolov8_at_every_scale_with_numbers() -> None:
    call_command("measure_catalogue", stdout=io.StringIO())
    entries = catalogue.catalogue()
    names = {entry.name for entry in entries}
    for family in ("yolo11", "yolo26", "yolov8"):
        for scale in "nsmlx":
            assert f"{family}{scale}" in names
    by_name = {entry.name: entry for entry in entries}
    assert by_name["yolo11n"].params == 2_624_080  # what ultralytics prints for yolo11n.yaml (80 classes)
    assert 5 < (by_name["yolo11n"].gflops or 0) < 8
    assert (by_name["yolov8x"].params or 0) > (by_name["yolov8n"].params or 0) * 10
    assert all(entry.task == "detect" for entry in entries)


def test_the_catalogue_is_computed_once_and_read_from_its_cache(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.DATA_DIR = str(tmp_path)
    unmeasured = catalogue.catalogue()
    assert not catalogue.cache_path().exists()
    assert [entry.name for entry in unmeasured] == [entry.name for entry in catalogue.shipped_architectures()]
    assert all(entry.params is None and entry.gflops is None for entry in unmeasured)

    call_command("measure_catalogue", stdout=io.StringIO())
    assert catalogue.cache_path().is_file()
    measured = catalogue.catalogue()
    assert [entry.name for entry in measured] == [entry.name for entry in unmeasured]
    assert all(entry.params and entry.gflops for entry in measured)


def test_architectures_are_filtered_by_task() -> None:
    assert len(catalogue.architectures_for("detect")) == 15
    assert catalogue.architectures_for("pose") == []


def test_it_fills_defaults_and_keeps_valid_extras() -> None:
    args = validate_train_args({"epochs": 5, "lr0": 0.001, "optimizer": "AdamW", "fliplr": 0})
    assert args == {
        "epochs": 5,
        "imgsz": 640,
        "batch": -1,
        "patience": 100,
        "cache": False,
        "lr0": 0.001,
        "optimizer": "AdamW",
        "fliplr": 0,
    }


@pytest.mark.parametrize("key", sorted(PLATFORM_CONTROLLED_ARGS))
def test_every_platform_controlled_argument_is_refused(key: str) -> None:
    with pytest.raises(TrainArgsError) as raised:
        validate_train_args({key: "x"})
    assert raised.value.errors == {key: "is set by the platform and cannot be changed."}


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"bogus": 1}, "bogus", "is not an ultralytics argument"),
        ({"format": "onnx"}, "format", "is not a training argument"),
        ({"momentum": "high"}, "momentum", "invalid type str"),
        ({"hsv_h": 1.5}, "hsv_h", "between 0.0 and 1.0"),
        ({"seed": 1.5}, "seed", "must be an int"),
        ({"rect": 1}, "rect", "must be a bool"),
        ({"copy_paste_mode": 3}, "copy_paste_mode", "must be text"),
        ({"batch": True}, "batch", "must be -1 (automatic)"),
        ({"epochs": 10_001}, "epochs", "between 1 and 10000"),
        ({"cache": "gpu"}, "cache", "none, ram or disk"),
    ],
)
def test_invalid_arguments_get_a_message_naming_them(raw: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(TrainArgsError) as raised:
        validate_train_args(raw)
    assert key in raised.value.errors
    assert fragment in raised.value.errors[key]


def test_custom_argument_text_is_parsed_as_yaml_values() -> None:
    parsed = catalogue.parse_custom_args("lr0=0.01\n# a comment\nmosaic: 0.5  # inline\ncos_lr=true\nfreeze=[0, 2]\n")
    assert parsed == {"lr0": 0.01, "mosaic": 0.5, "cos_lr": True, "freeze": [0, 2]}
    with pytest.raises(TrainArgsError) as raised:
        catalogue.parse_custom_args("lr0=0.1\nlr0=0.2")
    assert raised.value.errors == {"lr0": "is given twice."}


def test_the_image_formats_match_ultralytics() -> None:
    from ultralytics.data.utils import IMG_FORMATS

    assert set(IMG_FORMATS) <= IMAGE_SUFFIXES
