"""The worker side of presence (``training.presence``): every Dramatiq worker process
runs ``WorkerPresence``. On boot it declares the training queues it was told to
consume (``--queues train.<slug>``); then one daemon thread announces those queues
every ``WORKER_PRESENCE_INTERVAL_SECONDS`` and another keeps the process's alive key
fresh every ``WORKER_ALIVE_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
import redis
from django.conf import settings
from dramatiq.middleware import Middleware

from training.presence import (
    TRAINING_QUEUE_PREFIX,
    announce,
    announce_alive,
    process_worker_id,
    withdraw,
    withdraw_alive,
)

logger = logging.getLogger(__name__)


class WorkerPresence(Middleware):
    """Announces this worker process's queues and that it is alive."""

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
        """Its own thread, so neither a long epoch nor a slow periodic job delays it."""
        while not self._exited.is_set():
            try:
                announce_alive(self.worker_id)
            except Exception:
                logger.warning("could not announce this worker alive; retrying", exc_info=True)
            self._exited.wait(settings.WORKER_ALIVE_INTERVAL_SECONDS)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                announce(self.queues, self.worker_id)
            except Exception:
                logger.exception("worker presence loop failed; retrying")
            self._stop.wait(settings.WORKER_PRESENCE_INTERVAL_SECONDS)
