from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from hubsite.models import User
from training import catalogue
from training.catalogue import PLATFORM_CONTROLLED_ARGS, TrainArgsError, validate_train_args
from training.datasets import IMAGE_SUFFIXES
from training.models import Dataset, YoloModel

TASK_SUFFIXES = {"detect": "", "segment": "-seg", "pose": "-pose", "classify": "-cls", "obb": "-obb"}


def test_the_catalogue_offers_every_task_in_three_families_at_every_scale() -> None:
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    entries = catalogue.shipped_architectures()
    assert len(entries) == 75
    by_name = {entry.name: entry for entry in entries}
    for task, suffix in TASK_SUFFIXES.items():
        assert len(catalogue.architectures_for(task)) == 15
        for family in ("yolo26", "yolo11", "yolov8"):
            for scale in "nsmlx":
                assert by_name[f"{family}{scale}{suffix}"].task == task
    for entry in entries:  # each name is a YAML ultralytics resolves, for the task we file it under
        assert guess_model_task(yaml_model_load(entry.yaml)) == entry.task, entry.name  # type: ignore[no-untyped-call]
    assert by_name["yolo11n-seg"].label == "YOLO11n-seg (nano)"


def test_measuring_fills_in_only_what_the_cache_lacks(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.DATA_DIR = str(tmp_path)
    unmeasured = catalogue.catalogue()
    assert not catalogue.cache_path().exists()
    assert [entry.name for entry in unmeasured] == [entry.name for entry in catalogue.shipped_architectures()]
    assert not any(entry.measured for entry in unmeasured)

    out = io.StringIO()
    call_command("measure_catalogue", "--task", "classify", stdout=out)
    assert "15 architectures measured" in out.getvalue()
    by_name = {entry.name: entry for entry in catalogue.catalogue()}
    assert [entry.name for entry in by_name.values()] == [entry.name for entry in unmeasured]
    assert all(entry.measured for entry in by_name.values() if entry.task == "classify")
    assert not any(entry.measured for entry in by_name.values() if entry.task != "classify")
    assert by_name["yolo11n-cls"].label.endswith("GFLOPs at 224 px")
    assert by_name["yolov8x-cls"].params > by_name["yolov8n-cls"].params * 10  # type: ignore[operator]
    written = catalogue.cache_path().stat().st_mtime_ns

    out = io.StringIO()
    call_command("measure_catalogue", "--task", "classify", stdout=out)
    assert "0 architectures measured" in out.getvalue()
    assert catalogue.cache_path().stat().st_mtime_ns == written

    call_command("measure_catalogue", "--task", "detect", stdout=io.StringIO())
    by_name = {entry.name: entry for entry in catalogue.catalogue()}
    assert by_name["yolo11n"].params == 2_624_080  # what ultralytics prints for yolo11n.yaml (80 classes)
    assert 5 < (by_name["yolo11n"].gflops or 0) < 8
    assert by_name["yolo11n"].label.endswith("GFLOPs")
    assert by_name["yolo11n-cls"].measured
    assert not by_name["yolo11n-seg"].measured


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


# --- the model form follows the dataset's task --------------------------------------------------


def ready_dataset(owner: User, task: str) -> Dataset:
    return Dataset.objects.create(owner=owner, name=f"my {task} data", task=task, status=Dataset.Status.READY)


def offered_architectures(body: str) -> list[str]:
    select = re.search(r'<select name="architecture"[^>]*>(.*?)</select>', body, re.DOTALL)
    assert select is not None
    return re.findall(r'<option value="([^"]+)"', select.group(1))


@pytest.mark.django_db
@pytest.mark.parametrize("task", sorted(TASK_SUFFIXES))
def test_step_2_offers_only_the_chosen_datasets_task(owner_client: Client, user: User, task: str) -> None:
    dataset = ready_dataset(user, task)
    body = owner_client.get(f"/models/new/?dataset={dataset.uid}").content.decode()
    offered = offered_architectures(body)
    assert offered == [entry.name for entry in catalogue.architectures_for(task)]
    assert f'<option value="yolo11n{TASK_SUFFIXES[task]}" selected>' in body


@pytest.mark.django_db
def test_without_a_chosen_dataset_the_architectures_are_grouped_by_task(owner_client: Client, user: User) -> None:
    ready_dataset(user, "pose")
    body = owner_client.get("/models/new/").content.decode()
    assert len(offered_architectures(body)) == 75
    for label in ("Detection", "Segmentation", "Pose", "Classification", "Oriented boxes"):
        assert f'<optgroup label="{label}">' in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "architecture", "message"),
    [
        (
            "segment",
            "yolo11n",
            "yolo11n is a detection architecture and my segment data is a segmentation dataset: "
            "choose a segmentation architecture, such as yolo11n-seg.",
        ),
        (
            "detect",
            "yolo26s-pose",
            "yolo26s-pose is a pose architecture and my detect data is a detection dataset: "
            "choose a detection architecture, such as yolo11n.",
        ),
        (
            "obb",
            "yolov8m-cls",
            "yolov8m-cls is a classification architecture and my obb data is an oriented boxes dataset: "
            "choose an oriented boxes architecture, such as yolo11n-obb.",
        ),
    ],
)
def test_an_architecture_of_another_task_is_refused_in_plain_words(
    owner_client: Client, user: User, task: str, architecture: str, message: str
) -> None:
    dataset = ready_dataset(user, task)
    response = owner_client.post("/models/new/", model_form_data(dataset, architecture=architecture))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not YoloModel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("architecture", ["yolo11n-seg", "yolo26x-seg", "yolov8s-seg"])
def test_an_architecture_of_the_datasets_task_makes_the_model(
    owner_client: Client, user: User, architecture: str
) -> None:
    dataset = ready_dataset(user, "segment")
    response = owner_client.post("/models/new/", model_form_data(dataset, architecture=architecture))
    assert response.status_code == 302
    model = YoloModel.objects.get()
    assert (model.architecture, model.dataset) == (architecture, dataset)


def model_form_data(dataset: Dataset, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "model",
        "dataset": dataset.pk,
        "epochs": 3,
        "imgsz": 64,
        "batch": 8,
        "patience": 100,
        "cache": "none",
        "custom_args": "",
        **overrides,
    }
