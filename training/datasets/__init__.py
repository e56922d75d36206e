"""Datasets: upload, safe extraction, full validation, storage and the worker's local copy.

A dataset is a zip in the Ultralytics HUB format for one of the five tasks: a
``data.yaml`` at the root of the zip or inside its one top folder, ``images/`` and
``labels/`` with ``train`` and ``val`` splits (``test`` optional) and YOLO label files
(detection boxes, segmentation polygons, pose keypoints, oriented boxes); or, for
classification, ``train/`` and ``val/`` folders with one folder of images per class.
The task is read from the files or chosen at upload (``task_choice``). Every problem
found becomes a :class:`Problem`: which file, which line, what to do, in plain words.

Imports run one way: ``services`` -> ``task`` -> ``checks`` -> ``classify``/
``task_choice`` -> ``report`` -> ``spec``/``labels`` -> ``limits``/``problems``, with
``archive``, ``storage``, ``cache`` and ``samples`` beside them. Nothing here imports
ultralytics; the validation task reaches its checks through
``training.yolo.dataset_check`` on the worker.
"""

from training.datasets.archive import (
    CentralDirectory,
    Member,
    count_directory_entries,
    extract_archive,
    inspect_archive,
    read_central_directory,
)
from training.datasets.cache import (
    CACHE_MARKER,
    CACHE_SIZE_FILE,
    evict_cache,
    local_copy,
    prepare_local_copy,
    remove_cached_copy,
)
from training.datasets.checks import MAX_PROBLEMS, Validation, validate_extracted
from training.datasets.labels import IMAGE_SUFFIXES, LabelRow, parse_label_file
from training.datasets.limits import Limits, human_bytes, upload_too_large_message
from training.datasets.problems import DatasetError, Problem
from training.datasets.samples import class_colour, render_sample
from training.datasets.services import (
    DEMO_DATASET_NAME,
    DEMO_SEGMENTATION_DATASET_NAME,
    DatasetInUseError,
    create_dataset,
    create_demo_datasets,
    delete_dataset,
    rename_dataset,
    validate_again,
)
from training.datasets.spec import DatasetSpec, find_data_yaml, read_spec, training_yaml_text
from training.datasets.storage import (
    archive_key,
    delete_prefix,
    download_archive,
    sample_key,
    storage_keys,
    storage_put,
)
from training.datasets.task import run_validation, validate_dataset

__all__ = [
    "CACHE_MARKER",
    "CACHE_SIZE_FILE",
    "DEMO_DATASET_NAME",
    "DEMO_SEGMENTATION_DATASET_NAME",
    "IMAGE_SUFFIXES",
    "MAX_PROBLEMS",
    "CentralDirectory",
    "DatasetError",
    "DatasetInUseError",
    "DatasetSpec",
    "LabelRow",
    "Limits",
    "Member",
    "Problem",
    "Validation",
    "archive_key",
    "class_colour",
    "count_directory_entries",
    "create_dataset",
    "create_demo_datasets",
    "delete_dataset",
    "delete_prefix",
    "download_archive",
    "evict_cache",
    "extract_archive",
    "find_data_yaml",
    "human_bytes",
    "inspect_archive",
    "local_copy",
    "parse_label_file",
    "prepare_local_copy",
    "read_central_directory",
    "read_spec",
    "remove_cached_copy",
    "rename_dataset",
    "render_sample",
    "run_validation",
    "sample_key",
    "storage_keys",
    "storage_put",
    "training_yaml_text",
    "upload_too_large_message",
    "validate_again",
    "validate_dataset",
    "validate_extracted",
]
