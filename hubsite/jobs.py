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


def enqueue(actor_name: str, *args: Any, queue_name: str = LIGHT_QUEUE) -> None:
    """Send a message to an actor by its name, without importing the code that runs it
    (which lives in the worker's packages)."""
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options={}
    )
    dramatiq.get_broker().enqueue(message)


def enqueue_on_commit(actor_name: str, *args: Any, queue_name: str = LIGHT_QUEUE) -> None:
    """``enqueue`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: enqueue(actor_name, *args, queue_name=queue_name))
