"""A remote run's checkpoint upload: a signed, expiring URL bound to one staged
upload of one session; the PUT body streamed to storage (never held in memory
whole) under a key we choose; then, when the run names it in checkpoint_saved or
training_complete, the check on a light worker with the safe reader
(``training.weights.task.check_stored_weights``) before the rebuilt checkpoint
becomes the model's best weights."""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import PurePosixPath
from typing import Protocol

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hubsite.jobs import light_actor, send_on_commit
from training.datasets import storage_put
from training.evaluation import evaluate_new_weights
from training.models import Dataset, RemoteUpload, TrainingSession, YoloModel
from training.remote.errors import RemoteRefused
from training.remote.runs import ENDABLE
from training.weights.task import (
    CHECK_TIME_LIMIT_MS,
    LOST_CHECK_AFTER,
    LOST_CHECK_MESSAGE,
    WeightsRefused,
    check_stored_weights,
)

logger = logging.getLogger(__name__)

SALT = "training.remote.upload"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


CHUNK = 1024 * 1024


def stage_upload(session: TrainingSession, file_name: str, size: object) -> tuple[RemoteUpload, str]:
    """A new staged upload for an active remote session and its signed token."""
    if session.status not in ENDABLE:
        raise RemoteRefused(409, "run_ended", "This run has ended; it takes no more uploads.")
    if isinstance(size, (int, float)) and not isinstance(size, bool) and size > settings.WEIGHTS_MAX_UPLOAD_BYTES:
        raise RemoteRefused(413, "too_large", _too_large())
    upload = RemoteUpload.objects.create(session=session, file_name=PurePosixPath(file_name).name[:255])
    return upload, signing.TimestampSigner(salt=SALT).sign(f"{upload.uid}.{session.pk}")


def _too_large() -> str:
    return f"The file is larger than this site accepts ({settings.WEIGHTS_MAX_UPLOAD_BYTES} bytes)."


def upload_for_token(token: str) -> RemoteUpload:
    """The staged upload a token names: 403 for a tampered or expired token, 404 for
    one whose upload or session is gone or whose session has ended."""
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(token, max_age=settings.REMOTE_UPLOAD_URL_SECONDS)
    except signing.SignatureExpired as error:
        raise RemoteRefused(403, "url_expired", "This upload URL has expired; ask for a new one.") from error
    except signing.BadSignature as error:
        raise RemoteRefused(403, "url_invalid", "This upload URL is not valid.") from error
    uid, _, session_id = value.partition(".")
    upload = (
        RemoteUpload.objects.select_related("session__model")
        .filter(uid=uid, session_id=int(session_id), session__status__in=ENDABLE)
        .filter(Q(status=RemoteUpload.Status.WAITING) | Q(status=RemoteUpload.Status.RECEIVED))
        .first()
    )
    if upload is None:
        raise RemoteRefused(404, "upload_not_found", "No such upload, or its run has ended.")
    return upload


def upload_key(upload: RemoteUpload, model: YoloModel) -> str:
    return f"{model.storage_prefix}/remote/{upload.uid}/upload.pt"


def weights_key(upload: RemoteUpload, model: YoloModel) -> str:
    return f"{model.storage_prefix}/remote/{upload.uid}/weights.pt"


def receive(upload: RemoteUpload, body: Readable, length: int) -> None:
    """Stream ``length`` bytes of ``body`` to a temporary file, then to storage; a body
    over ``WEIGHTS_MAX_UPLOAD_BYTES`` is refused (413) before or while it is read."""
    limit = settings.WEIGHTS_MAX_UPLOAD_BYTES
    if length > limit:
        raise RemoteRefused(413, "too_large", _too_large())
    with tempfile.TemporaryFile(prefix="hubsite-remote-") as spool:
        received = 0
        while chunk := body.read(min(CHUNK, length - received)) if received < length else b"":
            received += len(chunk)
            if received > limit:
                raise RemoteRefused(413, "too_large", _too_large())
            spool.write(chunk)
        if received != length:
            raise RemoteRefused(400, "incomplete", "The body ended before its Content-Length.")
        spool.seek(0)
        key = storage_put(upload_key(upload, upload.session.model), spool)
    RemoteUpload.objects.filter(pk=upload.pk).update(status=RemoteUpload.Status.RECEIVED, upload=key, size=received)


def request_check(session: TrainingSession, model_path: object) -> RemoteUpload | None:
    """checkpoint_saved / training_complete name a received upload of *this* run: send
    it to the check (once). Any other name finds nothing and promotes nothing."""
    if not isinstance(model_path, str):
        return None
    uid = _uuid_or_none(model_path)
    upload = RemoteUpload.objects.filter(session=session, uid=uid).first() if uid else None
    if upload is None:
        return None
    with transaction.atomic():
        moved = RemoteUpload.objects.filter(pk=upload.pk, status=RemoteUpload.Status.RECEIVED).update(
            status=RemoteUpload.Status.CHECKING, updated_at=timezone.now()
        )
        if moved:
            send_on_commit(check_remote_upload, upload.pk)
    return upload


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@light_actor(time_limit_ms=CHECK_TIME_LIMIT_MS, max_retries=0)
def check_remote_upload(upload_id: int) -> None:
    """Check a remote run's upload (safe to run twice: only a ``checking`` one is touched)."""
    run_remote_check(upload_id)


def run_remote_check(upload_id: int) -> str | None:
    """Check the upload in this process; its final status, or None if it was not waiting."""
    upload = (
        RemoteUpload.objects.select_related("session__model__dataset")
        .filter(pk=upload_id, status=RemoteUpload.Status.CHECKING)
        .first()
    )
    if upload is None:
        return None
    model = upload.session.model
    received_key = upload.upload.name or ""
    try:
        checked = check_stored_weights(received_key, weights_key(upload, model))
        if checked.task != model.dataset.task:
            raise WeightsRefused(f"These are {checked.task} weights; the model is a {model.dataset.task} model.")
    except WeightsRefused as refused:
        _refuse(upload, str(refused))
        return RemoteUpload.Status.REFUSED
    except Exception:
        logger.exception("the check of remote upload %s stopped on an unexpected error", upload_id)
        _refuse(upload, "The check stopped on an unexpected error.")
        return RemoteUpload.Status.REFUSED
    with transaction.atomic():
        locked = YoloModel.objects.select_for_update().get(pk=model.pk)
        RemoteUpload.objects.filter(pk=upload.pk).update(
            status=RemoteUpload.Status.PROMOTED, weights=checked.key, upload=""
        )
        newer = RemoteUpload.objects.filter(
            session__model=locked, status=RemoteUpload.Status.PROMOTED, created_at__gt=upload.created_at
        ).exists()
        if not newer:
            locked.best_weights.name = checked.key
            locked.save(update_fields=["best_weights", "updated_at"])
            if model.dataset.status == Dataset.Status.READY:  # a ul:// dataset: ours to evaluate on
                evaluate_new_weights(upload.session_id)
    default_storage.delete(received_key)
    return RemoteUpload.Status.PROMOTED


def _refuse(upload: RemoteUpload, error: str) -> None:
    RemoteUpload.objects.filter(pk=upload.pk).update(status=RemoteUpload.Status.REFUSED, error=error, upload="")
    if upload.upload.name:
        default_storage.delete(upload.upload.name)


def give_up_lost_remote_checks() -> int:
    """Refuse uploads whose check was lost with its worker (or ran past its time limit),
    saying so, and delete their files; returns how many. The model keeps the weights it
    had. A periodic job on light workers (training/apps.py)."""
    now = timezone.now()
    lost = RemoteUpload.objects.filter(status=RemoteUpload.Status.CHECKING, updated_at__lt=now - LOST_CHECK_AFTER)
    given_up = 0
    for upload in lost:
        given_up += RemoteUpload.objects.filter(pk=upload.pk, status=RemoteUpload.Status.CHECKING).update(
            status=RemoteUpload.Status.REFUSED, error=LOST_CHECK_MESSAGE, upload="", updated_at=now
        )
        if upload.upload.name:
            default_storage.delete(upload.upload.name)
    return given_up
