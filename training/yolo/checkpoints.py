"""Reading a weights file we did not write, and writing the one we train from.

A ``.pt`` file is a pickle, and unpickling runs whatever the file asks for. This is
the only place that opens such a file (an upload, or a download by
``manage.py install_weights``), and it never runs the file's code:

1. torch's ``weights_only`` loader, which knows tensors and plain containers only,
   and refuses any other name in the pickle;
2. an explicit allowlist of the names an ultralytics checkpoint holds (its model
   classes, its layers, torch's layers), each mapped to an *inert stand-in*: a class
   with no behaviour that only keeps the attributes the pickle gives it. None of
   ultralytics' or torch's own constructors or ``__setstate__`` methods run, even
   when a crafted pickle asks for them;
3. a name outside the allowlist is refused before loading, by a static scan of the
   pickle (``get_unsafe_globals_in_checkpoint``).

From the stand-ins we read plain data (the architecture YAML dict, class names,
tensors), match the YAML against the architectures ultralytics ships, build that
architecture fresh from its shipped YAML with the file's class count, load the
tensors with ``strict=True``, and save a new checkpoint. Workers only ever load the
files this module (or our own training) wrote.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import pkgutil
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import ultralytics
from torch import nn
from torch.nn import modules as torch_modules
from ultralytics.nn import modules as ultralytics_modules
from ultralytics.nn import tasks as ultralytics_tasks

# The model classes we train, by the task ultralytics gives them.
TASK_MODEL_CLASSES: dict[str, str] = {
    "DetectionModel": "detect",
    "SegmentationModel": "segment",
    "PoseModel": "pose",
    "ClassificationModel": "classify",
    "OBBModel": "obb",
}
# Plain-data holders that ultralytics pickles along with a model (its training arguments).
EXTRA_NAMES = ("ultralytics.utils.IterableSimpleNamespace",)
ARCHITECTURE_NAME = re.compile(r"^[a-z0-9]+[nslmx](-[a-z]+)?$")
MAX_MODULE_DEPTH = 64
MAX_TENSORS = 100_000
MAX_CLASSES = 100_000
NAME_MAX_LENGTH = 200


class CheckpointRefused(Exception):
    """The file is not weights we can use; the message says why in plain words."""


@dataclass(frozen=True)
class CheckpointFacts:
    task: str  # detect, segment, pose, classify, obb
    architecture: str  # e.g. "yolo11n-seg"
    class_names: list[str]
    kpt_shape: list[int] | None = None  # pose models: keypoints and their dimensions


# -- the allowlist --------------------------------------------------------------------------


class InertObject:
    """Stands in for an allowlisted class while unpickling: it accepts any arguments
    and state and runs nothing, so the pickle can only hand us plain data."""

    pickled_name = ""

    def __new__(cls, *args: object, **kwargs: object) -> InertObject:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots), as pickle's BUILD gives
            state = state[0]
        if isinstance(state, dict):
            self.__dict__.update({key: value for key, value in state.items() if isinstance(key, str)})


def _pickled_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _module_classes(package: ModuleType) -> Iterable[type]:
    """The layer classes defined in a package's modules (exported or not: a checkpoint
    names them by the module that defines them)."""
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, nn.Module) and value.__module__ == info.name:
                yield value


@cache
def allowed_names() -> frozenset[str]:
    """The names an ultralytics checkpoint of the tasks we train holds: its five model
    classes, every layer ``ultralytics.nn.modules`` exports, every layer ``torch.nn``
    exports, and the namespace holding its training arguments."""
    names = {_pickled_name(getattr(ultralytics_tasks, name)) for name in TASK_MODEL_CLASSES}
    names.update(_pickled_name(cls) for cls in _module_classes(ultralytics_modules))
    names.update(_pickled_name(cls) for cls in _module_classes(torch_modules))
    names.update(EXTRA_NAMES)
    return frozenset(names)


@cache
def _stand_ins() -> list[Callable[..., Any] | tuple[Callable[..., Any], str]]:
    return [(type(name.rsplit(".", 1)[1], (InertObject,), {"pickled_name": name}), name) for name in allowed_names()]


# -- reading a file -------------------------------------------------------------------------


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's top-level dict, with stand-ins where the pickle held objects;
    raises CheckpointRefused for anything else."""
    if not zipfile.is_zipfile(path):
        raise CheckpointRefused(
            "This is not a PyTorch checkpoint (a .pt file saved by torch.save in PyTorch 1.6 or later)."
        )
    _refuse_compressed_entries(path)
    with torch.serialization.safe_globals(_stand_ins()):
        try:
            unknown = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (ValueError, RuntimeError, KeyError, pickle.UnpicklingError, EOFError) as error:
            raise CheckpointRefused(f"This is not a readable PyTorch checkpoint ({_short(error)}).") from error
        if unknown:
            raise CheckpointRefused(f"This file holds code or objects we do not load: {', '.join(sorted(unknown))}.")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
        except pickle.UnpicklingError as error:
            raise CheckpointRefused(f"This file holds code or objects we do not load ({_short(error)}).") from error
        except Exception as error:  # a damaged file fails in many ways inside torch
            raise CheckpointRefused(f"This is not a readable PyTorch checkpoint ({_short(error)}).") from error
    if not isinstance(loaded, dict):
        raise CheckpointRefused("This file holds no ultralytics checkpoint (it is not a dict with a model).")
    return loaded


def _refuse_compressed_entries(path: Path) -> None:
    """torch.save stores its entries uncompressed; a compressed one could expand far
    beyond the upload limit when loaded (a zip bomb), so memory stays bounded by the
    file's own size."""
    with zipfile.ZipFile(path) as archive:
        if any(entry.compress_type != zipfile.ZIP_STORED for entry in archive.infolist()):
            raise CheckpointRefused(
                "This file's entries are compressed; torch.save never compresses them, so it was not saved "
                "by PyTorch. Save the weights with torch.save or ultralytics and upload that file."
            )


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def _model_of(loaded: dict[str, Any]) -> InertObject:
    for key in ("ema", "model"):  # ultralytics keeps the EMA model during training, the model after
        candidate = loaded.get(key)
        if isinstance(candidate, InertObject):
            return candidate
    raise CheckpointRefused("This file holds no ultralytics model (no 'model' or 'ema' entry).")


def _task_of(model: InertObject) -> str:
    class_name = model.pickled_name.rsplit(".", 1)[1]
    task = TASK_MODEL_CLASSES.get(class_name) if model.pickled_name.startswith("ultralytics.nn.tasks.") else None
    if task is None:
        raise CheckpointRefused(f"This file holds a {class_name}, not a YOLO model of a task we train.")
    return task


def _class_names(model: InertObject, yaml_dict: dict[str, Any]) -> list[str]:
    raw = model.__dict__.get("names")
    if isinstance(raw, dict):
        if not all(isinstance(key, int) for key in raw) or sorted(raw) != list(range(len(raw))):
            raise CheckpointRefused("The file's class names are not numbered 0, 1, 2, ...")
        names = [raw[index] for index in range(len(raw))]
    elif isinstance(raw, list):
        names = raw
    else:
        count = yaml_dict.get("nc")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CLASSES:
            raise CheckpointRefused("The file names no classes.")
        names = [str(index) for index in range(count)]
    if not 1 <= len(names) <= MAX_CLASSES or not all(isinstance(name, str) for name in names):
        raise CheckpointRefused("The file's class names are not a list of text.")
    return [name[:NAME_MAX_LENGTH] for name in names]


def _kpt_shape(yaml_dict: dict[str, Any], task: str) -> list[int] | None:
    if task != "pose":
        return None
    shape = yaml_dict.get("kpt_shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
        or not 1 <= shape[0] <= 1000
        or shape[1] not in (2, 3)
    ):
        raise CheckpointRefused("The pose model does not say its keypoint shape (kpt_shape).")
    return list(shape)


def state_dict_of(model: InertObject) -> dict[str, torch.Tensor]:
    """The tensors a real module's ``state_dict()`` would hold, read from the stand-ins'
    plain attributes (no method of the pickled objects is called)."""
    tensors: dict[str, torch.Tensor] = {}
    visits = 0

    def walk(module: object, prefix: str, ancestors: tuple[int, ...]) -> None:
        nonlocal visits
        visits += 1
        if (
            not isinstance(module, InertObject)
            or id(module) in ancestors  # a layer inside itself
            or len(ancestors) > MAX_MODULE_DEPTH
            or visits > MAX_TENSORS
        ):
            raise CheckpointRefused("The file's model is not a tree of layers.")
        attributes = module.__dict__
        skipped = attributes.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, value in _items(attributes.get(group)):
                if value is None or (group == "_buffers" and name in skipped):
                    continue
                if not isinstance(value, torch.Tensor):
                    raise CheckpointRefused(f"The file's layer {prefix}{name} is not a tensor.")
                tensors[prefix + name] = value
                if len(tensors) > MAX_TENSORS:
                    raise CheckpointRefused("The file holds too many tensors for a YOLO model.")
        for name, child in _items(attributes.get("_modules")):
            if child is not None:
                walk(child, f"{prefix}{name}.", (*ancestors, id(module)))

    walk(model, "", ())
    return tensors


def _items(value: object) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise CheckpointRefused("The file's model is not a tree of layers.")
    return list(value.items())


# -- matching and rebuilding ----------------------------------------------------------------


@cache
def shipped_yaml(architecture: str) -> dict[str, Any]:
    """The YAML ultralytics ships for an architecture name like ``yolo11n-seg``, with its scale."""
    if not ARCHITECTURE_NAME.match(architecture):
        raise ValueError(f"{architecture!r} is not an architecture name")
    loaded: dict[str, Any] = ultralytics_tasks.yaml_model_load(f"{architecture}.yaml")  # type: ignore[no-untyped-call]
    return loaded


def _same_structure(file_yaml: dict[str, Any], architecture: str) -> bool:
    shipped = shipped_yaml(architecture)
    return all(file_yaml.get(key) == shipped.get(key) for key in ("backbone", "head")) and (
        file_yaml.get("scale") in (None, shipped.get("scale"))
    )


def _build(architecture: str, task: str, class_count: int, kpt_shape: list[int] | None) -> nn.Module:
    config = dict(shipped_yaml(architecture))
    config["nc"] = class_count
    model_class = next(getattr(ultralytics_tasks, name) for name, value in TASK_MODEL_CLASSES.items() if value == task)
    if kpt_shape is not None:
        config["kpt_shape"] = kpt_shape
        built: nn.Module = model_class(config, nc=class_count, data_kpt_shape=tuple(kpt_shape), verbose=False)
    else:
        built = model_class(config, nc=class_count, verbose=False)
    return built


def _fit(candidates: Sequence[str], tensors: dict[str, torch.Tensor], task: str, names: list[str], kpt: Any) -> Any:
    """The first candidate whose fresh model takes every tensor (strict), loaded with them."""
    for architecture in candidates:
        model = _build(architecture, task, len(names), kpt)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError:
            continue
        return architecture, model
    return None


def sanitise(path: Path, target: Path, candidates: Sequence[str]) -> CheckpointFacts:
    """Read the weights file at ``path`` safely, check it is one of the ``candidates``
    architectures (names like ``yolo11n``, ``yolo26s-pose``), and write a checkpoint
    our code built to ``target`` (atomically). Raises CheckpointRefused with the reason."""
    loaded = read_checkpoint(path)
    model = _model_of(loaded)
    task = _task_of(model)
    yaml_dict = model.__dict__.get("yaml")
    if not isinstance(yaml_dict, dict):
        raise CheckpointRefused("The file's model does not say its architecture (it has no YAML).")
    names = _class_names(model, yaml_dict)
    kpt = _kpt_shape(yaml_dict, task)
    same_task = [name for name in candidates if _task_of_name(name) == task]
    if not same_task:
        raise CheckpointRefused(f"This is a {task} model; these weights must be {_tasks_of(candidates)}.")
    matching = [name for name in same_task if _same_structure(yaml_dict, name)]
    if not matching:
        raise CheckpointRefused(
            f"Unknown architecture: the file's {task} model is none of {', '.join(same_task[:20])}"
            f"{' ...' if len(same_task) > 20 else ''} as ultralytics {ultralytics.__version__} ships them."
        )
    named = str(yaml_dict.get("yaml_file", "")).removesuffix(".yaml")
    matching.sort(key=lambda name: name != named)  # identical YAMLs (yolo11-cls, yolo26-cls): the file's own name
    tensors = state_dict_of(model)
    fitted = _fit(matching, tensors, task, names, kpt)
    if fitted is None:
        raise CheckpointRefused(
            f"The file's weights do not fit {' or '.join(matching)} (their layers or sizes differ)."
        )
    architecture, built = fitted
    write_checkpoint(built, target, task=task, architecture=architecture, names=names)
    return CheckpointFacts(task=task, architecture=architecture, class_names=names, kpt_shape=kpt)


def _task_of_name(architecture: str) -> str:
    suffix = architecture.partition("-")[2]
    return {"": "detect", "seg": "segment", "pose": "pose", "cls": "classify", "obb": "obb"}.get(suffix, "")


def _tasks_of(candidates: Sequence[str]) -> str:
    return " or ".join(sorted({_task_of_name(name) for name in candidates}))


def write_checkpoint(model: nn.Module, target: Path, *, task: str, architecture: str, names: list[str]) -> None:
    """Save ``model`` as an ultralytics checkpoint ``YOLO(target)`` loads, atomically."""
    model.names = dict(enumerate(names))  # type: ignore[assignment]
    model.args = {"task": task}  # type: ignore[assignment]
    checkpoint = {
        "model": model.half(),
        "ema": None,
        "train_args": {"task": task, "model": f"{architecture}.yaml"},
        "date": datetime.now(UTC).isoformat(),
        "version": ultralytics.__version__,
        "hubsite": {"architecture": architecture, "sanitised": True},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    try:
        torch.save(checkpoint, temporary)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
