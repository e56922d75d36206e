"""Classification datasets: no data.yaml, one folder of images per class in each split.

Layout (at the root of the zip or inside its single top folder)::

    train/<class>/*.jpg    val/<class>/*.jpg    [test/<class>/*.jpg]

``validation/`` or ``valid/`` stand for ``val/`` when it is absent, in the order
ultralytics looks for them. The classes are train's folder names, sorted (as
ultralytics and torchvision's ImageFolder number them); every split must hold the same
class folders, or the class numbers of the splits would not agree.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from training.datasets.labels import IMAGE_SUFFIXES, check_image_decodes, iter_images
from training.datasets.limits import Limits
from training.datasets.problems import Problem
from training.datasets.report import SAMPLE_COUNT, Sample, SplitReport, UltralyticsChecks, Validation
from training.datasets.spec import MAX_CLASS_NAME_LENGTH, DatasetSpec, relative_name
from training.models import Dataset

VAL_FOLDERS = ("val", "validation", "valid")  # ultralytics' check_cls_dataset order
SPLIT_FOLDERS = ("train", *VAL_FOLDERS, "test")
# ultralytics reads class numbers from this file when it is present: a dataset must not bring one.
NDJSON_NAMES = ".ndjson.yaml"


def classification_splits(root: Path) -> dict[str, Path]:
    """split -> its folder: train, the first of VAL_FOLDERS present, test."""
    splits = {"train": root / "train"}
    val = next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), None)
    if val is not None:
        splits["val"] = val
    if (root / "test").is_dir():
        splits["test"] = root / "test"
    return splits


def validate_classification(
    top: Path, root: Path, ultralytics: UltralyticsChecks, limits: Limits | None = None
) -> Validation:
    """Check the classification dataset whose ``train/`` is in ``root`` (below the
    extraction dir ``top``): its split and class folders, then every image, then
    ultralytics' own check of the folder."""
    limits = limits or Limits.from_settings()
    splits = classification_splits(root)
    spec = DatasetSpec(
        yaml_file="",
        root=relative_name(root, top),
        splits={split: [relative_name(folder, top)] for split, folder in splits.items()},
    )
    result = Validation(spec=spec, task=Dataset.Task.CLASSIFY.value)
    _check_root(result, top, root, splits)
    folders = {split: _class_folders(result, top, folder) for split, folder in splits.items()}
    spec.names = sorted(folders["train"])
    result.instances = [0] * len(spec.names)
    if not spec.names:
        result.report(
            Problem("train/ holds no class folders. Put each class's images in train/<class name>/.", spec.root)
        )
    elif len(spec.names) > limits.max_classes:
        result.report(
            Problem(
                f"train/ holds {len(spec.names):,} class folders; the limit is {limits.max_classes:,} "
                "(DATASET_MAX_CLASSES).",
                spec.root,
            )
        )
    if not result.ok:
        return result
    for split, by_name in folders.items():
        _check_same_classes(result, split, splits[split], top, set(by_name), spec.names)
    if not result.ok:
        return result
    for split, by_name in folders.items():
        _check_images(result, top, split, by_name, ultralytics)
    if result.ok:
        message = ultralytics.classify_folder_error(root)
        if message is not None:
            result.report(Problem(f"Ultralytics cannot use this dataset: {message}", spec.root))
    return result


def _check_root(result: Validation, top: Path, root: Path, splits: dict[str, Path]) -> None:
    if "val" not in splits:
        result.report(
            Problem(
                "There is no val/ folder next to train/. Add val/ with the same class folders as train/ "
                "(validation/ or valid/ are taken too).",
                result.spec.root,
            )
        )
    if (root / NDJSON_NAMES).exists():
        result.report(
            Problem(
                f"Remove {NDJSON_NAMES}: ultralytics would read the class numbers from it instead of the folders.",
                relative_name(root / NDJSON_NAMES, top),
            )
        )
    used = {folder.name for folder in splits.values()}
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name not in used:
            reason = (
                f"only {splits['val'].name}/ is used as the validation split"
                if path.name in VAL_FOLDERS
                else "only train/, val/ and test/ are used"
            )
            result.note(Problem(f"This folder is ignored: {reason}.", relative_name(path, top)))


def _class_folders(result: Validation, top: Path, split_folder: Path) -> dict[str, Path]:
    """The split's class folders by name; files directly in the split folder and badly
    named folders are reported."""
    folders: dict[str, Path] = {}
    for path in sorted(split_folder.iterdir()):
        rel = relative_name(path, top)
        if path.is_dir():
            problem = _class_name_problem(path.name)
            if problem is not None:
                result.report(Problem(problem, rel))
            else:
                folders[path.name] = path
        elif path.suffix.lower().lstrip(".") in IMAGE_SUFFIXES:
            result.report(
                Problem(
                    f"This image is directly in {split_folder.name}/; move it into the folder of its class "
                    f"({split_folder.name}/<class name>/).",
                    rel,
                )
            )
        else:
            result.note(Problem("This file is not in a class folder; it is ignored.", rel))
    return folders


def _class_name_problem(name: str) -> str | None:
    """Why a folder name cannot be a class name, or None."""
    if name.startswith("."):
        return (
            "This hidden folder would become a class of its own (ultralytics takes every folder as a class). Remove it."
        )
    if name != name.strip():
        return "This class folder's name starts or ends with a space. Rename it."
    if len(name) > MAX_CLASS_NAME_LENGTH:
        return f"This class folder's name is longer than {MAX_CLASS_NAME_LENGTH} characters. Rename it."
    if any(unicodedata.category(character).startswith("C") for character in name):
        return "This class folder's name holds control or invisible characters. Rename it with plain text."
    return None


def _check_same_classes(
    result: Validation, split: str, folder: Path, top: Path, present: set[str], names: list[str]
) -> None:
    rel = relative_name(folder, top)
    missing = [name for name in names if name not in present]
    extra = sorted(present - set(names))
    if missing:
        result.report(
            Problem(
                f"The {split} split has no folder for {_listed(missing, 'class')}, which train/ has. Every split "
                "needs the same class folders (ultralytics numbers the classes of each split from its folders).",
                rel,
            )
        )
    if extra:
        result.report(
            Problem(
                f"The {split} split has {_listed(extra, 'class folder')} that train/ lacks. Add "
                f"{'it' if len(extra) == 1 else 'them'} to train/ or remove {'it' if len(extra) == 1 else 'them'}.",
                rel,
            )
        )


def _listed(names: list[str], noun: str) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"{noun}{'' if len(names) == 1 else 'es' if noun.endswith('s') else 's'} {shown}{more}"


def _check_images(
    result: Validation, top: Path, split: str, by_name: dict[str, Path], ultralytics: UltralyticsChecks
) -> None:
    report = result.splits.setdefault(split, SplitReport())
    counts = result.class_images.setdefault(split, [0] * len(result.spec.names))
    for class_id, name in enumerate(result.spec.names):
        folder = by_name[name]
        found = 0
        for image in iter_images(folder):
            found += 1
            report.images += 1
            rel = relative_name(image, top)
            try:
                check_image_decodes(image)
            except ValueError as error:
                result.report(
                    Problem(f"This image cannot be decoded ({error}). Re-save it as JPEG or PNG, or remove it.", rel)
                )
                continue
            message = ultralytics.image_error(image)
            if message is not None:
                result.report(Problem(f"Ultralytics rejects this image: {message}", rel))
                continue
            counts[class_id] += 1
            result.instances[class_id] += 1
            report.instances += 1
            sampled = {sample.class_id for sample in result.samples if sample.split == split}
            if len(result.samples) < SAMPLE_COUNT and class_id not in sampled:
                result.samples.append(Sample(image, split, [], class_id))
        if found == 0:
            result.report(
                Problem(
                    f"The class folder '{name}' of the {split} split holds no images. Add images or remove the "
                    "class from every split.",
                    relative_name(folder, top),
                )
            )
