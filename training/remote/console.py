"""A remote run's console: chunks ordered by the client's ``chunkId``, a resent chunk
ignored, only the newest ``KEPT_CHUNKS`` kept; the session's ``log_tail`` (what the
Train tab shows, as for cloud runs) is their text, at most ``LOG_TAIL_CHARS``."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from training.models import RemoteConsoleChunk, TrainingSession

KEPT_CHUNKS = 400  # the client sends a chunk every 5 lines or 5 seconds
LOG_TAIL_CHARS = 64 * 1024
CHUNK_MAX_CHARS = 64 * 1024


def add_chunk(session_id: int, chunk_id: int, content: str) -> bool:
    """Keep one chunk; False when that chunk id was already kept (a retry)."""
    try:
        with transaction.atomic():
            RemoteConsoleChunk.objects.create(
                session_id=session_id, chunk_id=chunk_id, content=content[:CHUNK_MAX_CHARS]
            )
    except IntegrityError:
        return False
    newest = list(
        RemoteConsoleChunk.objects.filter(session_id=session_id)
        .order_by("-chunk_id")
        .values_list("chunk_id", "content")[:KEPT_CHUNKS]
    )
    if len(newest) == KEPT_CHUNKS:
        RemoteConsoleChunk.objects.filter(session_id=session_id, chunk_id__lt=newest[-1][0]).delete()
    text = "\n".join(content.rstrip("\n") for _, content in reversed(newest))
    TrainingSession.objects.filter(pk=session_id).update(log_tail=text[-LOG_TAIL_CHARS:])
    return True
