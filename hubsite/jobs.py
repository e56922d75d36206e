"""How the project defines and enqueues Dramatiq actors.

Every actor states its queue, time limit and retry budget here rather than
inheriting Dramatiq's defaults (10 minutes, 20 retries), which are wrong for both
quick jobs and training. Request code enqueues through ``send_on_commit`` so a
job never runs for a transaction that rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import dramatiq
from django.db import transaction

P = ParamSpec("P")
R = TypeVar("R")

LIGHT_QUEUE = "default"
LIGHT_TIME_LIMIT_MS = 5 * 60 * 1000
LIGHT_MAX_RETRIES = 3


def light_actor(
    *, time_limit_ms: int = LIGHT_TIME_LIMIT_MS, max_retries: int = LIGHT_MAX_RETRIES
) -> Callable[[Callable[P, R]], dramatiq.Actor[P, R]]:
    """An actor on the light queue: validation, exports, e-mail, the reaper."""

    def decorate(func: Callable[P, R]) -> dramatiq.Actor[P, R]:
        return dramatiq.actor(queue_name=LIGHT_QUEUE, time_limit=time_limit_ms, max_retries=max_retries)(func)

    return decorate


def send_on_commit(actor: dramatiq.Actor[Any, Any], *args: Any, **kwargs: Any) -> None:
    """Enqueue ``actor`` once the current transaction commits (at once outside one).

    Messages carry ids, never model instances."""
    transaction.on_commit(lambda: actor.send(*args, **kwargs))


def send_by_name(actor_name: str, queue_name: str, *args: Any) -> dramatiq.Message[Any]:
    """Enqueue a message for the actor named ``actor_name`` without importing it.

    The message carries no options of its own, so the worker that runs it applies
    the actor's (time limit, retries), as for ``actor.send``."""
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options={}
    )
    return dramatiq.get_broker().enqueue(message)
