"""The model catalogue and the training arguments a user may set.

Architectures are the model YAMLs that ship inside the ultralytics package
(YOLO26, YOLO11, YOLOv8 at scales n/s/m/l/x, for each task: ``yolo11n`` detects,
``yolo11n-seg`` segments, ``yolo11n-pose``, ``yolo11n-cls`` and ``yolo11n-obb``). A
model's architecture must do its dataset's task. Their parameter counts and GFLOPs
are measured by ``manage.py measure_catalogue`` (training/yolo/catalogue_facts.py)
and cached in a JSON file under ``DATA_DIR``, keyed by the ultralytics version; the
web process only reads that file and never imports ultralytics. Nothing is ever downloaded: pretrained weights are
offered only when ``WEIGHTS_DIR/<architecture>.pt`` exists (``training.weights``).

Training arguments are checked against ultralytics' own configuration
(``ultralytics.cfg``: the keys of ``DEFAULT_CFG_DICT`` in its train and
hyperparameter sections, and ``check_cfg`` for types and ranges). Arguments the
platform sets itself (device, paths, resume, time, ...) are refused.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import transaction

from hubsite.models import User
from training.models import Dataset, YoloModel

FAMILIES: tuple[tuple[str, str, str], ...] = (
    # (architecture prefix, display name, detection YAML inside ultralytics/cfg/models;
    # the other tasks' YAMLs lie beside it, e.g. 26/yolo26-seg.yaml)
    ("yolo26", "YOLO26", "26/yolo26.yaml"),
    ("yolo11", "YOLO11", "11/yolo11.yaml"),
    ("yolov8", "YOLOv8", "v8/yolov8.yaml"),
)
SCALES = ("n", "s", "m", "l", "x")
SCALE_NAMES = {"n": "nano", "s": "small", "m": "medium", "l": "large", "x": "extra large"}
# Each task's suffix in ultralytics' names: yolo11n-seg, yolo26s-pose, yolov8m-cls, yolo11x-obb.
ARCHITECTURE_TASKS = {
    Dataset.Task.DETECT.value: "",
    Dataset.Task.SEGMENT.value: "-seg",
    Dataset.Task.POSE.value: "-pose",
    Dataset.Task.CLASSIFY.value: "-cls",
    Dataset.Task.OBB.value: "-obb",
}
# Image size of the parameter and GFLOPs figures: classification models are trained
# and compared at 224 px, the others at 640 (as ultralytics' tables list them).
MEASURE_IMGSZ = {Dataset.Task.CLASSIFY.value: 224}
DEFAULT_MEASURE_IMGSZ = 640

# Arguments set by the form's own fields.
BASE_ARGS = ("epochs", "imgsz", "batch", "patience", "cache")
DEFAULT_ARGS: dict[str, Any] = {"epochs": 100, "imgsz": 640, "batch": -1, "patience": 100, "cache": False}
CACHE_CHOICES = (("none", "None"), ("ram", "RAM"), ("disk", "Disk"))
# Arguments the platform controls: where and how the run happens, never the user's choice.
PLATFORM_CONTROLLED_ARGS = frozenset(
    {
        "task",
        "mode",
        "model",
        "data",
        "device",
        "project",
        "name",
        "save_dir",
        "exist_ok",
        "resume",
        "time",
        "workers",
        "save",
        "save_period",
        "pretrained",
        "plots",
        "val",
        "verbose",
        "distill_model",
        "profile",
        "cfg",
        "source",
        "tracker",
    }
)
# Sections of ultralytics' default.yaml whose keys are training arguments.
TRAIN_SECTIONS = ("train settings", "hyperparameters")
MAX_EPOCHS = 10_000
MAX_IMGSZ = 4096
MAX_CUSTOM_ARGS = 50


class TrainArgsError(ValueError):
    """Training arguments that ultralytics or the platform would refuse; ``errors`` maps an
    argument name to a plain message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- architectures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    name: str  # e.g. "yolo11n", the YAML stem ultralytics accepts ("yolo11n.yaml")
    family: str
    scale: str
    task: str
    params: int | None = None
    gflops: float | None = None

    @property
    def yaml(self) -> str:
        return f"{self.name}.yaml"

    @property
    def measure_imgsz(self) -> int:
        return MEASURE_IMGSZ.get(self.task, DEFAULT_MEASURE_IMGSZ)

    @property
    def measured(self) -> bool:
        return self.params is not None and self.gflops is not None

    @property
    def label(self) -> str:
        text = f"{self.family}{self.scale}{ARCHITECTURE_TASKS[self.task]} ({SCALE_NAMES[self.scale]})"
        if self.params is not None and self.gflops is not None:
            text += f" - {self.params / 1e6:.1f}M params, {self.gflops:.1f} GFLOPs"
            if self.measure_imgsz != DEFAULT_MEASURE_IMGSZ:
                text += f" at {self.measure_imgsz} px"
        return text


def ultralytics_dir() -> Path:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise RuntimeError("the ultralytics package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def ultralytics_version() -> str:
    for distribution in ("ultralytics-opencv-headless", "ultralytics"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"  # pragma: no cover


def shipped_architectures() -> list[Architecture]:
    """The architectures whose YAML ships in the installed ultralytics (no numbers yet),
    task by task: detect, segment, pose, classify, obb."""
    return list(_shipped_architectures())


@cache
def _shipped_architectures() -> tuple[Architecture, ...]:
    models_dir = ultralytics_dir() / "cfg" / "models"
    result: list[Architecture] = []
    for task, suffix in ARCHITECTURE_TASKS.items():
        for prefix, family, detect_yaml in FAMILIES:
            path = (models_dir / detect_yaml).parent / f"{prefix}{suffix}.yaml"
            if not path.is_file():
                continue
            scales = (yaml.safe_load(path.read_text()) or {}).get("scales", {})
            result.extend(
                Architecture(name=f"{prefix}{scale}{suffix}", family=family, scale=scale, task=task)
                for scale in SCALES
                if scale in scales
            )
    return tuple(result)


def cache_path() -> Path:
    return Path(settings.DATA_DIR) / f"model-catalogue-{ultralytics_version()}.json"


def catalogue() -> list[Architecture]:
    """Every shipped architecture, with its parameters and GFLOPs where they have been
    measured (``manage.py measure_catalogue``, run by the demo setup and at deploy);
    the others without the numbers."""
    measured = {architecture.name: architecture for architecture in _read_cache(cache_path()) or []}
    return [measured.get(architecture.name, architecture) for architecture in _shipped_architectures()]


def write_cache(measured: list[Architecture]) -> None:
    """Replace the cache file atomically (``manage.py measure_catalogue`` measures)."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".catalogue.", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump([asdict(a) for a in measured if a.measured], out, indent=1)
    Path(temporary).replace(path)


def _read_cache(path: Path) -> list[Architecture] | None:
    try:
        raw = json.loads(path.read_text())
        return [Architecture(**item) for item in raw]
    except (OSError, ValueError, TypeError):
        return None


def architectures_for(task: str) -> list[Architecture]:
    return [a for a in catalogue() if a.task == task]


def find_architecture(name: str) -> Architecture | None:
    return next((a for a in catalogue() if a.name == name), None)


def default_architecture(task: str) -> str:
    """yolo11n for the task (yolo11n-seg, yolo11n-cls, ...)."""
    return f"yolo11n{ARCHITECTURE_TASKS.get(task, '')}"


def architecture_choices(architectures: list[Architecture], task: str | None) -> list[Any]:
    """The form's list: the task's architectures, or all of them grouped by task."""
    if task is not None:
        return [(a.name, a.label) for a in architectures if a.task == task]
    return [
        (Dataset.Task(each).label, [(a.name, a.label) for a in architectures if a.task == each])
        for each in ARCHITECTURE_TASKS
    ]


def task_mismatch_message(architecture: Architecture, dataset: Dataset) -> str:
    have = Dataset.Task(architecture.task).label.lower()
    wanted = Dataset.Task(dataset.task)
    return (
        f"{architecture.name} is {_a(have)} architecture and {dataset.name} is {_a(wanted.label.lower())} "
        f"dataset: choose {_a(wanted.label.lower())} architecture, such as {default_architecture(wanted)}."
    )


def _a(words: str) -> str:
    return f"{'an' if words[:1] in 'aeiou' else 'a'} {words}"


# --- training arguments -----------------------------------------------------------------------


@cache
def default_arguments() -> dict[str, Any]:
    """ultralytics' defaults (its cfg/default.yaml, "none" read as None, as ultralytics does),
    read from the file so the web process need not import ultralytics."""
    loaded = yaml.safe_load((ultralytics_dir() / "cfg" / "default.yaml").read_text(encoding="utf-8")) or {}
    return {
        str(key): None if isinstance(value, str) and value.lower() == "none" else value for key, value in loaded.items()
    }


@cache
def training_keys() -> frozenset[str]:
    """The keys of ultralytics' default.yaml in its train and hyperparameter sections."""
    text = (ultralytics_dir() / "cfg" / "default.yaml").read_text(encoding="utf-8")
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line.startswith("#") and "---" in line:
            section = line.lstrip("# ").split("-")[0].strip().lower()
            continue
        match = re.match(r"^([a-z_][a-z0-9_]*):", line)
        if match and section in TRAIN_SECTIONS:
            keys.add(match.group(1))
    return frozenset(keys)


def parse_custom_args(text: str) -> dict[str, Any]:
    """``key=value`` lines (``key: value`` works too; ``#`` starts a comment). Values are
    read as YAML scalars: 0.01, true, [0, 1], SGD."""
    result: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(.*)$", line)
        if not match:
            errors[f"line {number}"] = f"'{raw_line.strip()}' is not key=value, e.g. lr0=0.01."
            continue
        key, raw_value = match.group(1), match.group(2).strip()
        if key in result:
            errors[key] = "is given twice."
            continue
        try:
            result[key] = yaml.safe_load(raw_value) if raw_value else None
        except yaml.YAMLError:
            errors[key] = f"'{raw_value}' is not a value ultralytics can read."
    if errors:
        raise TrainArgsError(errors)
    return result


def validate_train_args(raw: dict[str, Any]) -> dict[str, Any]:
    """The arguments ultralytics will get, checked; raises TrainArgsError with a message per bad key.

    ``raw`` may hold the base arguments (epochs, imgsz, batch, patience, cache; defaults
    fill the missing ones) and any other ultralytics training argument."""
    defaults = default_arguments()
    errors: dict[str, str] = {}
    if len(raw) > MAX_CUSTOM_ARGS + len(BASE_ARGS):
        raise TrainArgsError({"arguments": f"at most {MAX_CUSTOM_ARGS} custom arguments."})
    args: dict[str, Any] = dict(DEFAULT_ARGS)
    train_keys = training_keys()
    for key, value in raw.items():
        if key in PLATFORM_CONTROLLED_ARGS:
            errors[key] = "is set by the platform and cannot be changed."
        elif key not in defaults:
            errors[key] = "is not an ultralytics argument."
        elif key not in train_keys:
            errors[key] = "is not a training argument (it applies to prediction, validation or export)."
        else:
            args[key] = value

    _check_base(args, errors)
    for key, value in list(args.items()):
        if key in errors or key in BASE_ARGS:
            continue
        default = defaults.get(key)
        if isinstance(default, str) and not isinstance(value, str):
            errors[key] = f"must be text, like {default!r}."
            continue
        try:
            args[key] = _ultralytics_check(key, value)
        except (TypeError, ValueError) as error:
            errors[key] = _plain(str(error))
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            errors[key] = "must be a number, text, true/false or a list."
    optimizer = args.get("optimizer")
    if "optimizer" in args and "optimizer" not in errors:
        allowed = ("SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp", "auto")
        if optimizer not in allowed:
            errors["optimizer"] = f"must be one of {', '.join(allowed)}."
    if errors:
        raise TrainArgsError(errors)
    return args


def _ultralytics_check(key: str, value: Any) -> Any:
    # The one place the web process may load ultralytics (and torch): a user typed a
    # custom argument, and only ultralytics knows its rules.
    from training.yolo.arguments import check_value

    return check_value(key, value)


def _check_base(args: dict[str, Any], errors: dict[str, str]) -> None:
    def whole(key: str, minimum: int, maximum: int) -> None:
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, int):
            errors[key] = "must be a whole number."
        elif not minimum <= value <= maximum:
            errors[key] = f"must be between {minimum} and {maximum}."

    whole("epochs", 1, MAX_EPOCHS)
    whole("imgsz", 32, MAX_IMGSZ)
    whole("patience", 0, MAX_EPOCHS)
    batch = args["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not (batch == -1 or 1 <= batch <= 1024):
        errors["batch"] = "must be -1 (automatic) or a whole number from 1 to 1024."
    if args["cache"] not in (False, "ram", "disk"):
        errors["cache"] = "must be none, ram or disk."


def _plain(message: str) -> str:
    """ultralytics' message without emojis and the leading key."""
    text = "".join(ch for ch in message if ord(ch) < 0x2000).strip()
    return text.replace("Valid ", "valid ")


# --- services ---------------------------------------------------------------------------------


def create_model(
    owner: User, *, name: str, dataset: Dataset, architecture: str, pretrained: bool, train_args: dict[str, Any]
) -> YoloModel:
    """Create the user's model from checked inputs (the form checks them first)."""
    if dataset.owner_id != owner.pk or dataset.status != Dataset.Status.READY:
        raise ValueError("the dataset must be the owner's and ready")
    with transaction.atomic():
        return YoloModel.objects.create(
            owner=owner,
            name=name,
            dataset=dataset,
            architecture=architecture,
            pretrained=pretrained,
            train_args=train_args,
        )


def rename_model(model: YoloModel, name: str) -> None:
    YoloModel.objects.filter(pk=model.pk).update(name=name)
    model.name = name
