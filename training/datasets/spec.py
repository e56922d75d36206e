"""data.yaml: found, parsed without aliases, checked, and rewritten for ultralytics."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.datasets.limits import Limits, human_bytes, read_capped
from training.datasets.problems import DatasetError, Problem, dataset_error

YAML_SUFFIXES = (".yaml", ".yml")
SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
MAX_CLASS_NAME_LENGTH = 200
# Keypoints per instance a pose dataset may declare (COCO has 17, whole-body sets 133).
MAX_KEYPOINTS = 512


@dataclass
class DatasetSpec:
    """What data.yaml says, checked: paths relative to the extraction dir, all inside it."""

    yaml_file: str  # relative to the extraction dir
    root: str  # the dataset root (data.yaml's folder, or its `path:`), relative; "." for the top
    splits: dict[str, list[str]] = field(default_factory=dict)  # split -> folders relative to the top
    names: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    keypoints: tuple[int, int] | None = None  # pose: kpt_shape (keypoints per instance, 2 or 3 values each)
    flip_idx: list[int] | None = None  # pose: which keypoint each one becomes in a left-right flip


def _yamls_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in YAML_SUFFIXES)


def _yaml_candidates(top: Path) -> list[Path]:
    candidates = _yamls_in(top)
    if not candidates:
        folders = [p for p in top.iterdir() if p.is_dir()]
        if len(folders) == 1:
            candidates = _yamls_in(folders[0])
    return candidates


def has_data_yaml(top: Path) -> bool:
    """Whether :func:`find_data_yaml` has a YAML file to look at."""
    return bool(_yaml_candidates(top))


def find_data_yaml(top: Path) -> Path:
    """data.yaml at the top, or inside the single top folder (as Ultralytics HUB accepts)."""
    candidates = _yaml_candidates(top)
    if not candidates:
        raise dataset_error(
            "No data.yaml was found at the root of the zip or in its single top folder. Add a data.yaml with "
            "train:, val: and names: next to the images/ and labels/ folders. (A classification dataset needs "
            "no data.yaml: it holds train/ and val/ folders with one folder of images per class.)"
        )
    if len(candidates) > 1:
        preferred = [p for p in candidates if p.name.lower() in ("data.yaml", "data.yml")]
        if len(preferred) != 1:
            names = ", ".join(p.name for p in candidates)
            raise dataset_error(f"There are several YAML files ({names}) and none is named data.yaml. Keep only one.")
        candidates = preferred
    return candidates[0]


def relative_name(path: Path, top: Path) -> str:
    return path.relative_to(top).as_posix() or "."


def _inside(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


class NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader without anchors and aliases: a few bytes of nested aliases
    expand exponentially once turned into text (the "billion laughs"), and a
    data.yaml never needs them."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark if isinstance(event.start_mark, yaml.error.Mark) else None
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (& and *) are not allowed", mark)
        return super().compose_node(parent, index)


NAME_SCALARS = (str, int, float, bool, datetime.date)


def _class_count(value: object, yaml_name: str, limits: Limits) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise dataset_error(f"'nc: {str(value)[:50]}' must be a positive whole number of classes.", yaml_name)
    if value > limits.max_classes:
        raise _too_many_classes(value, yaml_name, limits)
    return value


def _too_many_classes(count: int, yaml_name: str, limits: Limits) -> DatasetError:
    return dataset_error(
        f"data.yaml declares {count:,} classes; the limit is {limits.max_classes:,} (DATASET_MAX_CLASSES).", yaml_name
    )


def _class_name(value: object, number: int, yaml_name: str) -> str:
    if not isinstance(value, NAME_SCALARS):
        raise dataset_error(
            f"Class {number} in 'names:' is a {'list' if isinstance(value, list) else 'mapping or other value'}; "
            "each class name must be plain text.",
            yaml_name,
        )
    name = str(value)
    if not name.strip():
        raise dataset_error(f"Class {number} in 'names:' is empty.", yaml_name)
    if len(name) > MAX_CLASS_NAME_LENGTH:
        raise dataset_error(f"Class {number} in 'names:' is longer than {MAX_CLASS_NAME_LENGTH} characters.", yaml_name)
    return name


def _parse_names(data: dict[str, Any], yaml_name: str, limits: Limits) -> list[str]:
    names = data.get("names")
    nc = None if data.get("nc") is None else _class_count(data["nc"], yaml_name, limits)
    if names is None:
        if nc is None:
            raise dataset_error(
                "data.yaml has no 'names:' list. Add the class names, e.g. names: {0: cat, 1: dog}.", yaml_name
            )
        return [f"class_{i}" for i in range(nc)]
    if not isinstance(names, list | dict):
        raise dataset_error("'names:' must be a list or a mapping of class number to name.", yaml_name)
    if len(names) > limits.max_classes:
        raise _too_many_classes(len(names), yaml_name, limits)
    if isinstance(names, dict):
        by_number: dict[int, object] = {}
        for key, value in names.items():
            if not isinstance(key, int | str) or isinstance(key, bool) or not str(key).strip().isdecimal():
                raise dataset_error("The keys of 'names:' must be class numbers 0, 1, 2, ...", yaml_name)
            by_number[int(key)] = value
        if sorted(by_number) != list(range(len(by_number))):
            raise dataset_error("The class numbers in 'names:' must run 0, 1, 2, ... with no gaps.", yaml_name)
        names = [by_number[i] for i in range(len(by_number))]
    result = [_class_name(value, number, yaml_name) for number, value in enumerate(names)]
    if not result:
        raise dataset_error("'names:' is empty. List at least one class.", yaml_name)
    if nc is not None and nc != len(result):
        raise dataset_error(
            f"'nc: {nc}' does not match the {len(result)} names listed. Remove nc or fix it.", yaml_name
        )
    return result


def _parse_keypoints(data: dict[str, Any], yaml_name: str) -> tuple[tuple[int, int] | None, list[int] | None]:
    """kpt_shape and flip_idx, checked: [K, 2 or 3] with 1 <= K <= MAX_KEYPOINTS, and
    flip_idx a permutation of 0..K-1 (each keypoint names its mirror image)."""
    shape, flip = data.get("kpt_shape"), data.get("flip_idx")
    if shape is None:
        if flip is not None:
            raise dataset_error(
                "data.yaml has flip_idx but no kpt_shape. A pose dataset declares kpt_shape: [keypoints, 2 or 3]; "
                "other datasets have no flip_idx.",
                yaml_name,
            )
        return None, None
    example = "e.g. kpt_shape: [17, 3] for 17 keypoints of x y visibility, or [4, 2] for 4 of x y"
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(value, int) and not isinstance(value, bool) for value in shape)
    ):
        raise dataset_error(f"'kpt_shape: {str(shape)[:50]}' must be two whole numbers, {example}.", yaml_name)
    count, dims = shape
    if not 1 <= count <= MAX_KEYPOINTS:
        raise dataset_error(
            f"'kpt_shape: {shape}' declares {count} keypoints; a pose dataset has 1 to {MAX_KEYPOINTS}.", yaml_name
        )
    if dims not in (2, 3):
        raise dataset_error(
            f"The second number of 'kpt_shape: {shape}' must be 2 (x y) or 3 (x y visibility), {example}.",
            yaml_name,
        )
    if flip is None:
        return (count, dims), None
    if not isinstance(flip, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in flip):
        raise dataset_error("'flip_idx:' must be a list of keypoint numbers, e.g. [0, 2, 1].", yaml_name)
    if len(flip) != count:
        raise dataset_error(
            f"'flip_idx:' lists {len(flip)} keypoints but kpt_shape declares {count}; it needs one entry per "
            "keypoint: the number of the keypoint it becomes when the image is mirrored.",
            yaml_name,
        )
    if sorted(flip) != list(range(count)):
        missing = sorted(set(range(count)) - set(flip))
        raise dataset_error(
            f"'flip_idx:' must list each keypoint number from 0 to {count - 1} exactly once; "
            f"{', '.join(map(str, missing[:10]))} {'is' if len(missing) == 1 else 'are'} missing.",
            yaml_name,
        )
    return (count, dims), flip


def read_spec(top: Path, limits: Limits | None = None) -> DatasetSpec:
    """Find, parse and check data.yaml under the extraction dir ``top``."""
    limits = limits or Limits.from_settings()
    top = top.resolve()
    yaml_path = find_data_yaml(top)
    yaml_name = relative_name(yaml_path, top)
    raw = read_capped(yaml_path, limits.max_yaml_bytes)
    if raw is None:
        raise dataset_error(
            f"data.yaml is larger than {human_bytes(limits.max_yaml_bytes)}; it only needs the splits and the "
            "class names.",
            yaml_name,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise dataset_error("data.yaml is not UTF-8 text. Save it as UTF-8.", yaml_name) from None
    try:
        data = yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise dataset_error(
            f"data.yaml is not valid YAML ({problem}). Fix the syntax on this line.", yaml_name, line
        ) from None
    except RecursionError:
        raise dataset_error("data.yaml is nested too deeply to be a dataset description.", yaml_name) from None
    if not isinstance(data, dict):
        raise dataset_error("data.yaml must be a mapping with train:, val: and names: keys.", yaml_name)

    spec = DatasetSpec(yaml_file=yaml_name, root=".")
    spec.names = _parse_names(data, yaml_name, limits)
    spec.keypoints, spec.flip_idx = _parse_keypoints(data, yaml_name)

    base = yaml_path.parent
    raw_path = data.get("path")
    if raw_path not in (None, ""):
        if not isinstance(raw_path, str):
            raise dataset_error("'path:' must be a folder name.", yaml_name)
        if os.path.isabs(raw_path) or raw_path.replace("\\", "/").startswith("/"):
            raise dataset_error(
                f"'path: {raw_path}' is an absolute path outside the dataset. Use 'path: .' or remove the line.",
                yaml_name,
            )
        candidate = (base / raw_path).resolve()
        if not _inside(candidate, top):
            raise dataset_error(
                f"'path: {raw_path}' points outside the dataset. Use 'path: .' or remove the line.", yaml_name
            )
        if candidate.is_dir():
            base = candidate
        else:
            spec.warnings.append(
                Problem(
                    f"'path: {raw_path}' is not a folder in the zip, so the folder of data.yaml is used instead.",
                    yaml_name,
                )
            )
    spec.root = relative_name(base, top)

    problems: list[Problem] = []
    if "val" not in data and "validation" in data:
        data["val"] = data["validation"]
    for split in SPLITS:
        value = data.get(split)
        if value in (None, "", []):
            if split in REQUIRED_SPLITS:
                problems.append(
                    Problem(
                        f"data.yaml has no '{split}:' split. Add e.g. '{split}: images/{split}' "
                        f"and put the {split} images in that folder.",
                        yaml_name,
                    )
                )
            continue
        entries = value if isinstance(value, list) else [value]
        folders: list[str] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry.strip():
                problems.append(Problem(f"'{split}:' must be a folder name or a list of them.", yaml_name))
                continue
            if os.path.isabs(entry) or entry.replace("\\", "/").startswith("/"):
                problems.append(
                    Problem(f"'{split}: {entry}' is an absolute path; use a folder inside the zip.", yaml_name)
                )
                continue
            folder = (base / entry).resolve()
            if not _inside(folder, top):
                problems.append(
                    Problem(f"'{split}: {entry}' points outside the dataset; use a folder inside the zip.", yaml_name)
                )
                continue
            if not folder.exists():
                problems.append(
                    Problem(
                        f"The {split} folder '{entry}' named in data.yaml is not in the zip. Add it or fix the path.",
                        yaml_name,
                    )
                )
                continue
            if not folder.is_dir():
                problems.append(
                    Problem(
                        f"'{split}: {entry}' is a file; only folders of images are supported. Point it at a folder.",
                        yaml_name,
                    )
                )
                continue
            folders.append(relative_name(folder, top))
        if folders:
            spec.splits[split] = folders
    if problems:
        raise DatasetError(problems)
    return spec


def training_yaml_text(spec: DatasetSpec, top: Path, *, location: Path | None = None) -> str:
    """A clean data.yaml for ultralytics: absolute paths, only the keys we checked (no
    ``download:``, which ultralytics would execute). ``location`` is where ``top`` will
    be when the file is used (default: where it is now)."""
    base = (location or top).resolve()

    def absolute(relative: str) -> str:
        return os.path.normpath(base / relative)

    data: dict[str, Any] = {"path": absolute(spec.root)}
    for split, folders in spec.splits.items():
        paths = [absolute(folder) for folder in folders]
        data[split] = paths[0] if len(paths) == 1 else paths
    data["names"] = dict(enumerate(spec.names))
    if spec.keypoints is not None:
        data["kpt_shape"] = list(spec.keypoints)
        if spec.flip_idx is not None:
            data["flip_idx"] = list(spec.flip_idx)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1_000_000)
