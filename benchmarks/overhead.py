"""Training overhead of the platform's worker path versus bare ultralytics.

    .venv/bin/python -m benchmarks.overhead [--epochs 8] [--rounds 2] [--imgsz 64]

Trains the same model (yolo11n.yaml from scratch) on the same synthetic dataset
with the same arguments, alternating bare ``YOLO(...).train(...)`` and the
platform's ``run_session`` (callbacks, heartbeat thread, database writes, billing
holds and charges, checkpoint uploads to storage). An epoch's time is the gap
between consecutive epoch starts, so it includes everything the platform does at
the epoch boundary; the first epoch of each run is warm-up and left out.

Then measures claim latency: from a Start committing to a real idle worker process
claiming the session.

Needs PostgreSQL and Redis: DATABASE_URL names a server (a throwaway database is
created there and dropped), REDIS_URL the broker; defaults are the development
machine's 127.0.0.1:5432 and 127.0.0.1:6379. Storage is local files in a temp dir.
Last lines: ``claim_latency_ms=<median>`` then ``overhead_ratio=<ratio>``.
"""

from __future__ import annotations

import argparse
import itertools
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
    from hubsite.models import User
    from training.models import YoloModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--claims", type=int, default=5)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="hubsite-bench-"))
    with throwaway_database() as database_url:
        os.environ.update(worker_environ(scratch))
        setup_django(
            database_url,
            debug=None,  # DEBUG as the environment sets it (on by default in development)
            TRAINING_HEARTBEAT_INTERVAL_SECONDS="1",
            WORKER_PRESENCE_INTERVAL_SECONDS="1",
        )
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        bare, platform = _compare(args, scratch)
        claim_ms = _claim_latency(args, scratch)

    bare_median, platform_median = statistics.median(bare), statistics.median(platform)
    print(
        f"bare_epoch_median_s={bare_median:.4f} platform_epoch_median_s={platform_median:.4f} epochs_each={len(bare)}"
    )
    print(f"claim_latency_ms={claim_ms:.0f}")
    print(f"overhead_ratio={platform_median / bare_median:.4f}")


def _compare(args: argparse.Namespace, scratch: Path) -> tuple[list[float], list[float]]:
    from hubsite.models import User
    from tests.factories import TINY_TRAINING, fund, make_model, make_ready_dataset
    from training.datasets import prepare_local_copy

    user = User.objects.create_user(f"bench-{secrets.token_hex(3)}@example.com", "x")
    fund(user, 1_000_000_000, as_adjustment=True)
    dataset = make_ready_dataset(user, scratch, train_images=args.images, val_images=max(8, args.images // 4))
    data_yaml = prepare_local_copy(dataset, scratch / "bare-cache")
    arguments = {**TINY_TRAINING, "imgsz": args.imgsz, "epochs": args.epochs}
    bare: list[float] = []
    platform: list[float] = []
    for round_number in range(args.rounds):
        bare += _bare_run(data_yaml, arguments, scratch / f"bare-{round_number}")
        platform += _platform_run(user, make_model(user, dataset, **arguments))
        print(f"round {round_number + 1}: bare {statistics.median(bare):.4f} s, platform "
              f"{statistics.median(platform):.4f} s per epoch", flush=True)  # fmt: skip
    return bare, platform


def _bare_run(data_yaml: Path, arguments: dict[str, object], save_dir: Path) -> list[float]:
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    starts: list[float] = []
    yolo = YOLO("yolo11n.yaml")
    yolo.add_callback("on_train_start", lambda trainer: torch.set_num_threads(os.cpu_count() or 1))
    yolo.add_callback("on_train_epoch_start", lambda trainer: starts.append(time.monotonic()))
    yolo.train(data=str(data_yaml), save_dir=str(save_dir), exist_ok=True, workers=0, plots=False,
               verbose=False, device="cpu", **arguments)  # fmt: skip
    return _gaps(starts)


def _platform_run(user: User, model: YoloModel) -> list[float]:
    from tests.factories import cpu_instance
    from training.engine.presence import new_worker_id
    from training.engine.runner import run_session
    from training.models import EpochRecord, TrainingSession

    session = TrainingSession.objects.create(
        model=model,
        owner=user,
        instance_type=cpu_instance(),
        target_epochs=model.target_epochs,
    )
    run_session(session.pk, new_worker_id())
    session.refresh_from_db()
    assert session.status == TrainingSession.Status.COMPLETED, session.failure_reason
    starts = [record.started_at.timestamp() for record in EpochRecord.objects.filter(session=session)]
    return _gaps(starts)


def _gaps(starts: list[float]) -> list[float]:
    """Seconds between consecutive epoch starts, leaving out the warm-up epoch."""
    return [later - earlier for earlier, later in itertools.pairwise(starts[1:])]


def _claim_latency(args: argparse.Namespace, scratch: Path) -> float:
    from django.utils import timezone

    from hubsite.models import User
    from tests.factories import cpu_instance, make_model, make_ready_dataset
    from training import sessions
    from training.engine.presence import live_queues
    from training.models import TrainingSession

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "1", "--queues", "train.cpu"],
        cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "train.cpu" not in live_queues():
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not come up")
            time.sleep(0.2)
        user = User.objects.get()
        dataset = make_ready_dataset(user, scratch / "claims", train_images=8, val_images=8)
        latencies: list[float] = []
        for _ in range(args.claims):
            model = make_model(user, dataset, epochs=1)
            session = sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))
            committed = timezone.now()
            while not (claimed := TrainingSession.objects.get(pk=session.pk)).claimed_at:
                time.sleep(0.002)
            latencies.append((claimed.claimed_at - committed).total_seconds() * 1000)
            sessions.request_stop(claimed)
            while TrainingSession.objects.get(pk=session.pk).status not in TrainingSession.FINAL_STATUSES:
                time.sleep(0.1)
        return statistics.median(latencies)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


if __name__ == "__main__":
    main()
