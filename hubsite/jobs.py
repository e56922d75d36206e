"""How the project defines, enqueues and schedules Dramatiq jobs.

Every actor states its queue, time limit and retry budget here rather than
inheriting Dramatiq's defaults (10 minutes, 20 retries), which are wrong for both
quick jobs and training. Request code enqueues through ``send_on_commit`` so a
job never runs for a transaction that rolled back.

Apps register their periodic jobs with ``register_periodic`` in their
``AppConfig.ready()``; the ``PeriodicJobs`` middleware runs them on light workers.
This module imports no models: the broker loads its middleware before the apps are
ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import dramatiq
from django.db import close_old_connections, connection, transaction
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

LIGHT_QUEUE = "default"
LIGHT_TIME_LIMIT_MS = 5 * 60 * 1000
LIGHT_MAX_RETRIES = 3


def light_actor(
    *, time_limit_ms: int = LIGHT_TIME_LIMIT_MS, max_retries: int = LIGHT_MAX_RETRIES, actor_name: str | None = None
) -> Callable[[Callable[P, R]], dramatiq.Actor[P, R]]:
    """An actor on the light queue: validation, exports, e-mail, reconciliation.
    ``actor_name`` (default: the function's name) is what ``send_by_name`` sends to."""

    def decorate(func: Callable[P, R]) -> dramatiq.Actor[P, R]:
        return dramatiq.actor(
            actor_name=actor_name, queue_name=LIGHT_QUEUE, time_limit=time_limit_ms, max_retries=max_retries
        )(func)

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


def send_by_name_on_commit(actor_name: str, queue_name: str, *args: Any) -> None:
    """``send_by_name`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send_by_name(actor_name, queue_name, *args))


# -- periodic jobs ---------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: Callable[[], object]
    every: Callable[[], float]  # seconds, read before each wait so settings can change it
    at_boot: bool  # run once as the worker boots, or first after one interval


_periodic_jobs: dict[str, PeriodicJob] = {}


def register_periodic(
    name: str, run: Callable[[], object], *, every: Callable[[], float], at_boot: bool = True
) -> None:
    """Run ``run`` every ``every()`` seconds in each light worker process, in a thread
    of its own. A job that must run once across all workers decides that itself (a
    Redis key, a conditional UPDATE). Registering a name again replaces the job."""
    _periodic_jobs[name] = PeriodicJob(name=name, run=run, every=every, at_boot=at_boot)


def periodic_jobs() -> list[PeriodicJob]:
    return list(_periodic_jobs.values())


class PeriodicJobs(Middleware):
    """Runs the registered periodic jobs in a worker that consumes the light queue,
    each in its own daemon thread, until the worker shuts down."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        if LIGHT_QUEUE not in (worker.consumer_whitelist or broker.get_declared_queues()):
            return
        for job in periodic_jobs():
            threading.Thread(target=self._repeat, args=(job,), name=f"periodic-{job.name}", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()

    def _repeat(self, job: PeriodicJob) -> None:
        try:
            if job.at_boot and not self._stop.is_set():
                self._run_once(job)
            while not self._stop.wait(job.every()):
                self._run_once(job)
        finally:
            connection.close()

    @staticmethod
    def _run_once(job: PeriodicJob) -> None:
        try:
            job.run()
        except Exception:
            logger.exception("periodic job %s failed; retrying", job.name)
        finally:
            close_old_connections()
