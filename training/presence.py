"""Which worker queues and worker processes are alive right now, kept in Redis.

Every worker process announces the training queues it consumes (``train.<slug>``),
one key per queue with a short TTL, so Start can ask ``live_queues()`` and refuse a
type with no live worker instead of waiting forever. It also keeps its own alive key
(``WORKER_ALIVE_TTL_SECONDS``) fresh. A session's worker id starts with that process
id (``new_worker_id``), so the reaper can tell a dead worker (its key expired) from
one in a long epoch (it keeps announcing itself) within seconds.

The worker side, the threads that announce, is ``training.engine.presence``. This
module imports no models: the broker loads that middleware before the apps are ready.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid

import redis
from django.conf import settings

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
