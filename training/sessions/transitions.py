"""Every change of a training session's status, each one conditional UPDATE.

States: queued -> initializing -> training -> completed, with stopping
-> stopped, paused and failed on the side. ``ALLOWED_SOURCES`` lists, for each
status, the statuses a session may reach it from; ``transition`` refuses any other
move before it touches the database. The final statuses lead nowhere: Resume
creates a new session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Q

from training.models import TrainingSession

Status = TrainingSession.Status
ACTIVE = TrainingSession.ACTIVE_STATUSES
WORKER_OWNED = (Status.INITIALIZING, Status.TRAINING, Status.STOPPING)

ALLOWED_SOURCES: Mapping[str, frozenset[str]] = {
    Status.QUEUED: frozenset(WORKER_OWNED),  # the reaper requeues a session whose worker was lost
    Status.INITIALIZING: frozenset({Status.QUEUED}),  # a worker's claim
    Status.TRAINING: frozenset({Status.INITIALIZING}),
    Status.STOPPING: frozenset({Status.INITIALIZING, Status.TRAINING}),
    Status.STOPPED: frozenset({Status.QUEUED, *WORKER_OWNED}),
    Status.PAUSED: frozenset(WORKER_OWNED),
    Status.COMPLETED: frozenset(WORKER_OWNED),
    Status.FAILED: frozenset(WORKER_OWNED),
}


class IllegalTransition(ValueError):
    """A status change the table does not allow; nothing was written."""


def transition(session_id: int, sources: Iterable[str], target: str, *, where: Q | None = None, **fields: Any) -> bool:
    """Move a session from one of ``sources`` to ``target``, setting ``fields``, in one
    UPDATE conditional on its status (and on ``where``). True when it moved; False,
    with nothing changed, when the session was not in one of ``sources``."""
    sources = tuple(sources)
    illegal = [source for source in sources if source not in ALLOWED_SOURCES.get(target, frozenset())]
    if illegal or not sources:
        raise IllegalTransition(f"a session cannot go from {illegal or 'nowhere'} to {target}")
    query = TrainingSession.objects.filter(pk=session_id, status__in=sources)
    if where is not None:
        query = query.filter(where)
    return query.update(status=target, **fields) == 1
