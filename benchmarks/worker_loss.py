"""How long a lost training worker goes unnoticed: SIGKILL to the session back in queued.

    .venv/bin/python -m benchmarks.worker_loss [--rounds 6] [--heartbeat-rounds 2]

Starts a light worker (it runs the reaper) and a training worker as real
``rundramatiq`` processes with the default timings, and one Epochs session on a
small synthetic dataset. Each round: wait until a fresh training worker has
claimed the session and is training, wait an offset (0, 0.5, 1 or 1.5 s, so the
kill lands anywhere in the 2 s announce and heartbeat cycles), SIGKILL the
training worker's process group, and time until the session's status is
``queued`` again (polled every 20 ms). Then ``--heartbeat-rounds`` more rounds with
``TRAINING_REQUEUE_ON_LOST_PRESENCE=0`` in the light worker: the rule before
presence, a heartbeat older than ``TRAINING_HEARTBEAT_STALE_SECONDS`` (60 s).

Needs PostgreSQL and Redis: DATABASE_URL names a server (a throwaway database is
created there and dropped), REDIS_URL the broker. Storage is local files in a temp
dir. Last line: ``requeue_after_kill_s=<median> max_s=<max> rounds=<n>`` for the
presence rule.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.benchdb import BASE_DIR, setup_django, throwaway_database, worker_environ

if TYPE_CHECKING:
    from training.models import TrainingSession

OFFSETS_S = (0.0, 0.5, 1.0, 1.5)
DEFAULT_TIMING = {
    "WORKER_ALIVE_INTERVAL_SECONDS": "2",
    "WORKER_ALIVE_TTL_SECONDS": "8",
    "TRAINING_REAPER_INTERVAL_SECONDS": "3",
    "TRAINING_HEARTBEAT_INTERVAL_SECONDS": "2",
    "TRAINING_HEARTBEAT_STALE_SECONDS": "60",
    "TRAINING_MAX_ATTEMPTS": "1000",  # kills before an epoch completes must not fail the session
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--heartbeat-rounds", type=int, default=2)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="hubsite-bench-"))
    os.environ.update(DEFAULT_TIMING)
    with throwaway_database() as database_url:
        os.environ.update(worker_environ(scratch))
        setup_django(database_url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        session = _training_session(scratch)
        presence = _measure(session, args.rounds, scratch, {})
        heartbeat = _measure(session, args.heartbeat_rounds, scratch, {"TRAINING_REQUEUE_ON_LOST_PRESENCE": "0"})
        _stop(session)

    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores")
    if heartbeat:
        print(f"heartbeat_rule_s={statistics.median(heartbeat):.1f} max_s={max(heartbeat):.1f} rounds={len(heartbeat)}")
    print(f"requeue_after_kill_s={statistics.median(presence):.1f} max_s={max(presence):.1f} rounds={len(presence)}")


def _training_session(scratch: Path) -> TrainingSession:
    from hubsite.models import User
    from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
    from training.models import TrainingSession

    user = User.objects.create_user(f"bench-{secrets.token_hex(3)}@example.com", "x")
    fund(user, 1_000_000_000, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, scratch, train_images=32, val_images=8), epochs=1000)
    # Created queued and sent by _measure: the workers are not up yet, so Start would refuse.
    return TrainingSession.objects.create(model=model, owner=user, instance_type=cpu_instance(), target_epochs=1000)


def _measure(session: TrainingSession, rounds: int, scratch: Path, light_env: dict[str, str]) -> list[float]:
    from training import sessions
    from training.models import TrainingSession

    if rounds == 0:
        return []
    light = _worker("default", scratch / f"light-{len(light_env)}.log", light_env)
    timings: list[float] = []
    try:
        for round_number in range(rounds):
            if _status(session) == TrainingSession.Status.QUEUED:
                sessions.enqueue_training(session.pk, "train.cpu")
            training = _worker("train.cpu", scratch / f"train-{len(light_env)}-{round_number}.log", {})
            _wait(lambda: _status(session) == TrainingSession.Status.TRAINING, timeout=180)
            time.sleep(1 + OFFSETS_S[round_number % len(OFFSETS_S)])
            os.killpg(training.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            training.wait()
            _wait(lambda: _status(session) == TrainingSession.Status.QUEUED, timeout=180, interval=0.02)
            timings.append(time.monotonic() - killed_at)
            print(f"{'heartbeat' if light_env else 'presence'} round {round_number + 1}: "
                  f"requeued {timings[-1]:.2f} s after the kill", flush=True)  # fmt: skip
    finally:
        _terminate(light)
    return timings


def _worker(queue: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    from training.presence import live_queues

    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "1", "--queues", queue],
            cwd=BASE_DIR, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _wait(lambda: queue in live_queues() and b"is ready for action" in log.read_bytes(), timeout=120)
    return process


def _status(session: TrainingSession) -> str:
    from training.models import TrainingSession

    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)


def _wait(predicate: object, *, timeout: float, interval: float = 0.1) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached within {timeout} s")
        time.sleep(interval)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _stop(session: TrainingSession) -> None:
    from training import sessions

    sessions.request_stop(session)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
