"""Which worker queues and worker processes are alive right now, and the reaper.

Every Dramatiq worker process runs ``WorkerPresence``: on boot it declares the
training queues it was told to consume (``--queues train.<slug>``), then a daemon
thread refreshes one Redis key per queue with a short TTL. Start asks
``live_queues()`` so a type with no live worker is refused instead of waiting
forever. The light worker's thread also schedules the Stripe reconciliation and the
ledger check.

A second thread keeps the process's own alive key (``WORKER_ALIVE_TTL_SECONDS``)
fresh. A session's worker id starts with that process id (``new_worker_id``), so
the reaper, run every ``TRAINING_REAPER_INTERVAL_SECONDS`` by a third thread on
light workers, can tell a dead worker (its key expired) from one in a long epoch
(its threads keep announcing it) within seconds.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import uuid
from typing import Any

import dramatiq
import redis
from django.conf import settings
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

TRAINING_QUEUE_PREFIX = "train."


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


def _presence_key(queue: str, worker_id: str) -> str:
    return f"{settings.DRAMATIQ_NAMESPACE}:presence:{queue}:{worker_id}"


def announce(queues: set[str], worker_id: str) -> None:
    client = _redis()
    pipe = client.pipeline()
    for queue in queues:
        pipe.set(_presence_key(queue, worker_id), "1", ex=3 * settings.WORKER_PRESENCE_INTERVAL_SECONDS)
    pipe.execute()


def withdraw(queues: set[str], worker_id: str) -> None:
    _redis().delete(*[_presence_key(queue, worker_id) for queue in queues])


def live_queues() -> set[str]:
    """Queues that at least one worker consumed within the last three presence intervals."""
    prefix = f"{settings.DRAMATIQ_NAMESPACE}:presence:"
    found: set[str] = set()
    for key in _redis().scan_iter(match=f"{prefix}*", count=500):
        queue, _, _worker = key.decode()[len(prefix) :].partition(":")
        found.add(queue)
    return found


def _alive_key(process_id: str) -> str:
    return f"{settings.DRAMATIQ_NAMESPACE}:alive:{process_id}"


def announce_alive(process_id: str) -> None:
    _redis().set(_alive_key(process_id), "1", ex=settings.WORKER_ALIVE_TTL_SECONDS)


def withdraw_alive(process_id: str) -> None:
    _redis().delete(_alive_key(process_id))


def gone_processes(process_ids: set[str]) -> set[str]:
    """The processes among ``process_ids`` that stopped announcing themselves alive.

    Raises ``redis.RedisError`` when Redis cannot answer: the caller must then treat
    every process as unknown, never as gone."""
    ordered = sorted(process_ids)
    if not ordered:
        return set()
    pipe = _redis().pipeline(transaction=False)
    for process_id in ordered:
        pipe.exists(_alive_key(process_id))
    return {process_id for process_id, alive in zip(ordered, pipe.execute(), strict=True) if not alive}


def process_worker_id() -> str:
    """This process's id, under which it announces its queues and that it is alive."""
    return _process_worker_id(os.getpid())  # keyed on the pid: a forked child gets its own


@functools.cache
def _process_worker_id(pid: int) -> str:
    return f"{socket.gethostname()[:64]}-{pid}-{uuid.uuid4().hex[:8]}"


def new_worker_id() -> str:
    """A worker id for one claim: this process's id, a slash and a random part, so
    two claims never share an id and the reaper can find the claiming process."""
    return f"{process_worker_id()}/{uuid.uuid4().hex[:8]}"


def process_of(worker_id: str) -> str:
    """The process part of a session's worker id."""
    return worker_id.partition("/")[0]


class WorkerPresence(Middleware):
    """Announces this worker process's queues and that it is alive, and runs the
    reaper on light workers."""

    def __init__(self) -> None:
        self.worker_id = process_worker_id()
        self.queues: set[str] = set()
        self._stop = threading.Event()
        self._exited = threading.Event()
        self._thread: threading.Thread | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        whitelist = worker.consumer_whitelist or set()
        for queue in whitelist:
            if queue.startswith(TRAINING_QUEUE_PREFIX):
                broker.declare_queue(queue)  # so the worker starts a consumer for it
        self.queues = set(whitelist) or set(broker.get_declared_queues())

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._thread = threading.Thread(target=self._run, name="worker-presence", daemon=True)
        self._thread.start()
        threading.Thread(target=self._stay_alive, name="worker-alive", daemon=True).start()
        if "default" in self.queues:
            threading.Thread(target=self._reap, name="session-reaper", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()
        try:
            withdraw(self.queues, self.worker_id)
        except redis.RedisError:
            logger.warning("could not withdraw worker presence", exc_info=True)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        # Only now: a graceful shutdown waits for the session in progress, which
        # this process still owns until its actor returns.
        self._exited.set()
        try:
            withdraw_alive(self.worker_id)
        except redis.RedisError:
            logger.warning("could not withdraw the alive key", exc_info=True)

    def _stay_alive(self) -> None:
        """Its own thread, so neither a long epoch nor a slow reaper delays it."""
        while not self._exited.is_set():
            try:
                announce_alive(self.worker_id)
            except Exception:
                logger.warning("could not announce this worker alive; retrying", exc_info=True)
            self._exited.wait(settings.WORKER_ALIVE_INTERVAL_SECONDS)

    def _reap(self) -> None:
        from django.db import close_old_connections, connection

        from training.sessions import reap_stale_sessions

        try:
            while not self._stop.wait(settings.TRAINING_REAPER_INTERVAL_SECONDS):
                try:
                    reap_stale_sessions()
                except Exception:
                    logger.exception("reaping lost sessions failed; retrying")
                finally:
                    close_old_connections()
        finally:
            connection.close()

    def _run(self) -> None:
        from billing.invariants import maybe_schedule_ledger_check
        from billing.stripe.reconcile import maybe_schedule_reconcile

        light = "default" in self.queues
        while not self._stop.is_set():
            try:
                announce(self.queues, self.worker_id)
                if light:
                    maybe_schedule_reconcile()
                    maybe_schedule_ledger_check()
            except Exception:
                logger.exception("worker presence loop failed; retrying")
            finally:
                from django.db import close_old_connections

                close_old_connections()
            self._stop.wait(settings.WORKER_PRESENCE_INTERVAL_SECONDS)
