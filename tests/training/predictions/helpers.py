"""Tiny real models of every task for the Predict tab's tests, trained once per test
process in the test process itself (a few seconds each at 64 px), and a model row
whose best weights are those, in storage."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hubsite.models import User
from tests.factories import TINY_TRAINING, make_ready_dataset
from training.datasets import extract_archive, read_spec, storage_put, training_yaml_text
from training.datasets.synthetic import write_synthetic_dataset
from training.datasets.task_choice import find_classify_root
from training.models import YoloModel

ARCHITECTURES = {
    "detect": "yolo11n",
    "segment": "yolo11n-seg",
    "pose": "yolo11n-pose",
    "obb": "yolo11n-obb",
    "classify": "yolo11n-cls",
}
TASKS = sorted(ARCHITECTURES)


@dataclass(frozen=True)
class Trained:
    weights: bytes  # best.pt
    picture: bytes  # a validation picture of the dataset it trained on (PNG/JPEG bytes)
    picture_name: str


@functools.cache
def trained(task: str) -> Trained:
    """best.pt of the task's nano model trained for 3 epochs at 64 px on the synthetic
    dataset, and one of that dataset's validation pictures."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    work = Path(tempfile.mkdtemp(prefix=f"hubsite-predict-{task}-"))
    archive = write_synthetic_dataset(work / "data.zip", train_images=16, val_images=4, image_size=64, task=task)
    content = work / "content"
    content.mkdir()
    extract_archive(archive, content)
    if task == "classify":
        root = find_classify_root(content.resolve())
        assert root is not None
        data = str(root)
    else:
        data_yaml = work / "data.yaml"
        data_yaml.write_text(training_yaml_text(read_spec(content), content), encoding="utf-8")
        data = str(data_yaml)
    yolo = YOLO(f"{ARCHITECTURES[task]}.yaml")
    yolo.train(data=data, epochs=3, device="cpu", workers=0, plots=False, save_dir=str(work / "run"), **TINY_TRAINING)
    assert yolo.trainer is not None
    picture = validation_pictures(content)[0]
    return Trained(Path(yolo.trainer.best).read_bytes(), picture.read_bytes(), picture.name)


def validation_pictures(content: Path) -> list[Path]:
    return sorted(
        path
        for path in content.rglob("*")
        if path.suffix.lower() in {".jpg", ".png"} and "val" in path.relative_to(content).parts
    )


def trained_model(owner: User, tmp_path: Path, task: str = "detect") -> YoloModel:
    """A model of ``task`` on a ready synthetic dataset, with trained best weights stored."""
    dataset = make_ready_dataset(owner, tmp_path, task=task, train_images=4, val_images=4)
    model = YoloModel.objects.create(
        owner=owner,
        name=f"shapes {task}",
        dataset=dataset,
        architecture=ARCHITECTURES[task],
        train_args=dict(TINY_TRAINING),
    )
    model.best_weights.name = storage_put(f"{model.storage_prefix}/best.pt", trained(task).weights)
    model.epochs_completed = 3
    model.save()
    return model
