"""Checking an uploaded .pt on the light queue.

The web stores the file and enqueues ``validate_weights(id)`` on commit. A light
worker copies it into a temporary folder, reads it with the safe loader
(``training.yolo.checkpoints``: no code in the file runs), matches its architecture
against the ones ultralytics ships, and stores the checkpoint the loader rebuilt.
The uploaded file itself is then deleted, whatever the outcome; the upload moves
from ``processing`` to ``ready`` or ``invalid`` with one conditional UPDATE, so a
redelivered message finds it done and does nothing.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.core.files.storage import default_storage
from django.utils import timezone

from hubsite.jobs import light_actor
from training import catalogue
from training.datasets import delete_prefix, storage_put
from training.models import WeightsUpload
from training.weights.architectures import shipped_names

logger = logging.getLogger(__name__)

CHECK_TIME_LIMIT_MS = 15 * 60 * 1000
# As for datasets (training/datasets/task.py): a check still running this long after
# the upload was lost with its worker or stopped by the time limit.
LOST_CHECK_AFTER = timedelta(milliseconds=CHECK_TIME_LIMIT_MS) + timedelta(minutes=30)
LOST_CHECK_MESSAGE = (
    "The check did not finish (the worker stopped, or it ran past its time limit). Upload the file again."
)


class WeightsRefused(Exception):
    """The upload cannot be used; the message says why in plain words."""


@dataclass(frozen=True)
class CheckedWeights:
    key: str  # the rebuilt checkpoint in storage
    task: str
    architecture: str
    class_names: list[str]


def weights_key(upload: WeightsUpload) -> str:
    return f"{upload.storage_prefix}/weights.pt"


def upload_key(upload: WeightsUpload) -> str:
    return f"{upload.storage_prefix}/upload.pt"


@light_actor(time_limit_ms=CHECK_TIME_LIMIT_MS, max_retries=0)
def validate_weights(upload_id: int) -> None:
    """Check an uploaded weights file (safe to run twice: only a ``processing`` one is touched)."""
    run_weights_check(upload_id)


def run_weights_check(upload_id: int) -> str | None:
    """Check the upload in this process; returns its final status (None if it is gone or
    was not waiting for a check)."""
    upload = WeightsUpload.objects.filter(pk=upload_id, status=WeightsUpload.Status.PROCESSING).first()
    if upload is None:
        return None
    checked: CheckedWeights | None = None
    error = ""
    try:
        checked = _check(upload)
    except WeightsRefused as refused:
        error = str(refused)
    except Exception:
        logger.exception("the check of uploaded weights %s stopped on an unexpected error", upload_id)
        error = "The check stopped on an unexpected error. Upload the file again."
    if checked is not None:
        fields: dict[str, object] = {
            "status": WeightsUpload.Status.READY,
            "task": checked.task,
            "architecture": checked.architecture,
            "class_names": checked.class_names,
            "weights": checked.key,
        }
    else:
        fields = {"status": WeightsUpload.Status.INVALID, "error": error}
    changed = WeightsUpload.objects.filter(pk=upload_id, status=WeightsUpload.Status.PROCESSING).update(
        upload="", **fields
    )
    if upload.upload.name:
        default_storage.delete(upload.upload.name)  # only the rebuilt checkpoint is ever used
    if not changed:  # deleted (or done) meanwhile: leave nothing of ours behind
        if not WeightsUpload.objects.filter(pk=upload_id).exists():
            delete_prefix(upload.storage_prefix)
        return None
    return str(fields["status"])


def _check(upload: WeightsUpload) -> CheckedWeights:
    if not upload.upload.name:
        raise WeightsRefused("The uploaded file is missing. Upload it again.")
    return check_stored_weights(upload.upload.name, weights_key(upload))


def check_stored_weights(received_key: str, target_key: str) -> CheckedWeights:
    """Read the stored file ``received_key`` with the safe reader and store the
    checkpoint it rebuilt at ``target_key``. Raises WeightsRefused, saying why, for a
    file that is not weights of an architecture this site trains. Light workers only:
    it loads torch. Remote training's uploads go through here too (``training.remote``)."""
    from training.yolo.checkpoints import CheckpointRefused, sanitise  # only here: it imports torch

    with tempfile.TemporaryDirectory(prefix="hubsite-weights-") as work:
        received = Path(work) / "upload.pt"
        with default_storage.open(received_key, "rb") as source, received.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        rebuilt = Path(work) / "weights.pt"
        try:
            facts = sanitise(received, rebuilt, candidates=shipped_names())
        except CheckpointRefused as refused:
            raise WeightsRefused(str(refused)) from refused
        if catalogue.find_architecture(facts.architecture) is None:
            raise WeightsRefused(
                f"These are {facts.architecture} weights ({facts.task}); this site does not train "
                f"{facts.architecture} models."
            )
        with rebuilt.open("rb") as handle:
            key = storage_put(target_key, handle)
    return CheckedWeights(key, facts.task, facts.architecture, facts.class_names)


def give_up_lost_checks() -> int:
    """Mark uploads whose check was lost invalid, saying so, and delete their files;
    returns how many. A periodic job on light workers (training/apps.py)."""
    now = timezone.now()
    lost = WeightsUpload.objects.filter(status=WeightsUpload.Status.PROCESSING, updated_at__lt=now - LOST_CHECK_AFTER)
    given_up = 0
    for upload in lost:
        given_up += WeightsUpload.objects.filter(pk=upload.pk, status=WeightsUpload.Status.PROCESSING).update(
            status=WeightsUpload.Status.INVALID, error=LOST_CHECK_MESSAGE, upload="", updated_at=now
        )
        if upload.upload.name:
            default_storage.delete(upload.upload.name)
    return given_up
