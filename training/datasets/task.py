"""Dataset validation on the light queue.

The web stores the uploaded zip and enqueues ``validate_dataset(id)`` on commit; a
light worker downloads the zip from storage into a temporary folder, extracts and
checks it (``training.datasets.checks``, with ultralytics' own checks from
``training.yolo.dataset_check``), stores sample pictures under the dataset's
storage prefix, and moves the dataset from ``processing`` to ``ready`` or
``invalid`` with one conditional UPDATE (a redelivered message finds it already
done and does nothing).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from hubsite.jobs import light_actor
from training.datasets.archive import extract_archive
from training.datasets.checks import MAX_PROBLEMS, validate_extracted
from training.datasets.problems import DatasetError, Problem
from training.datasets.report import Validation
from training.datasets.samples import render_sample
from training.datasets.storage import download_archive, sample_key, storage_put
from training.datasets.task_choice import AmbiguousTaskError
from training.models import Dataset

logger = logging.getLogger(__name__)

VALIDATION_TIME_LIMIT_MS = 30 * 60 * 1000
# A dataset still processing this long after validation was asked for has lost its
# validation: the worker died, or the time limit stopped it (dramatiq's time limit is
# not an Exception, so run_validation cannot record it). The margin covers a queue wait.
LOST_VALIDATION_AFTER = timedelta(milliseconds=VALIDATION_TIME_LIMIT_MS) + timedelta(minutes=30)
LOST_VALIDATION_MESSAGE = (
    "Validation did not finish (the worker stopped, or it ran past its time limit). Upload the dataset again; "
    "if it keeps failing, try a smaller zip."
)


@light_actor(time_limit_ms=VALIDATION_TIME_LIMIT_MS, max_retries=0)
def validate_dataset(dataset_id: int) -> None:
    """Validate an uploaded dataset (safe to run twice: only a ``processing`` one is touched)."""
    run_validation(dataset_id)


def run_validation(dataset_id: int) -> str | None:
    """Validate the dataset in this process; returns its final status (None if it is gone
    or was not waiting for validation)."""
    dataset = Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.PROCESSING).first()
    if dataset is None:
        return None
    omitted = 0
    stats: dict[str, object]
    try:
        stats, problems, omitted = _check(dataset)
    except AmbiguousTaskError as error:
        # The detail page offers to validate the files again as each of these tasks.
        stats, problems = {"task_choices": list(error.choices)}, error.problems
    except DatasetError as error:
        stats, problems = {}, error.problems
    except Exception:
        logger.exception("validation of dataset %s stopped on an unexpected error", dataset_id)
        stats, problems = {}, [Problem("Validation stopped on an unexpected error. Upload the dataset again.")]
    status = Dataset.Status.INVALID if problems else Dataset.Status.READY
    errors = [problem.as_dict() for problem in problems[:MAX_PROBLEMS]]
    more = len(problems[MAX_PROBLEMS:]) + omitted
    if more:
        errors.append(Problem(f"... and {more} more problems like these.").as_dict())
    changed = Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.PROCESSING).update(
        status=status,
        errors=errors,
        stats=stats,
        class_names=stats.get("classes", []),
        task=stats.get("task") or dataset.declared_task or dataset.task,
    )
    return str(status) if changed else None


def _check(dataset: Dataset) -> tuple[dict[str, object], list[Problem], int]:
    from training.yolo import dataset_check  # only here: it imports ultralytics and torch

    with tempfile.TemporaryDirectory(prefix="hubsite-dataset-") as work:
        archive = download_archive(dataset, Path(work) / "archive.zip")
        content = Path(work) / "content"
        content.mkdir()
        extract_archive(archive, content)
        archive.unlink()
        result = validate_extracted(content, dataset_check, dataset.declared_task)
        stats = result.stats()
        if result.ok:
            stats["samples"] = _store_samples(dataset, result)
        return stats, result.problems, result.omitted


def _store_samples(dataset: Dataset, result: Validation) -> list[dict[str, object]]:
    samples: list[dict[str, object]] = []
    names = result.spec.names
    for index, sample in enumerate(result.samples):
        picture = render_sample(sample.image, sample.rows, names, task=result.task, class_id=sample.class_id)
        key = storage_put(sample_key(dataset, index), picture)
        samples.append(
            {
                "index": index,
                "split": sample.split,
                "name": sample.image.name,
                "boxes": len(sample.rows),
                "class": names[sample.class_id] if sample.class_id is not None else None,
                "key": key,
            }
        )
    return samples


def give_up_lost_validations() -> int:
    """Mark datasets whose validation was lost invalid, saying so; returns how many.
    A periodic job on light workers (training/apps.py); one conditional UPDATE."""
    now = timezone.now()
    return Dataset.objects.filter(status=Dataset.Status.PROCESSING, updated_at__lt=now - LOST_VALIDATION_AFTER).update(
        status=Dataset.Status.INVALID, errors=[Problem(LOST_VALIDATION_MESSAGE).as_dict()], updated_at=now
    )
