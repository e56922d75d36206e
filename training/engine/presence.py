"""Which worker queues have a live worker right now, and the periodic reaper.

Every Dramatiq worker process runs ``WorkerPresence``: on boot it declares the
training queues it was told to consume (``--queues train.<slug>``), then a daemon
thread refreshes one Redis key per queue with a short TTL. Start asks
``live_queues()`` so a type with no live worker is refused instead of waiting
forever. The light worker's thread also runs the reaper, which requeues training
sessions whose worker stopped sending heartbeats, and schedules the Stripe
reconciliation.
"""

from __future__ import annotations

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


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class WorkerPresence(Middleware):
    """Announces this worker process's queues and runs the reaper on light workers."""

    def __init__(self) -> None:
        self.worker_id = new_worker_id()
        self.queues: set[str] = set()
        self._stop = threading.Event()
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

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()
        try:
            withdraw(self.queues, self.worker_id)
        except redis.RedisError:
            logger.warning("could not withdraw worker presence", exc_info=True)

    def _run(self) -> None:
        from billing.invariants import maybe_schedule_ledger_check
        from billing.stripe_services import maybe_schedule_reconcile
        from training.sessions import reap_stale_sessions

        runs_reaper = "default" in self.queues
        while not self._stop.is_set():
            try:
                announce(self.queues, self.worker_id)
                if runs_reaper:
                    reap_stale_sessions()
                    maybe_schedule_reconcile()
                    maybe_schedule_ledger_check()
            except Exception:
                logger.exception("worker presence loop failed; retrying")
            finally:
                from django.db import close_old_connections

                close_old_connections()
            self._stop.wait(settings.WORKER_PRESENCE_INTERVAL_SECONDS)
