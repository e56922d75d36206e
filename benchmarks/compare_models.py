"""Rendering the comparison of 5 models of 100 epochs each, with evaluations.

    .venv/bin/python -m benchmarks.compare_models [--models 5] [--epochs 100] [--renders 300]

Builds ``--models`` detection models, each with ``--epochs`` epoch records (the
engine's metrics and losses), every epoch held and charged through the billing
functions, and a finished evaluation with its 101-point PR curves and per-class
figures; then renders ``/models/compare/?m=...&m=...`` through Django's test client
(the whole request: middleware, session, the view, the template) ``--renders``
times after 20 renders of warm-up, and times each. DEBUG is off, as in production.

On a busy machine the wall-clock figures include the time spent waiting for a CPU;
the median CPU time per render, printed too, does not.

``queries=`` is the number of SQL queries one render makes (session, user and the
header's balance included); the page's test asserts it stays the same for 2 and 5
models.

DATABASE_URL names a PostgreSQL server (default: the development machine's
127.0.0.1:5432); a throwaway database ``hubsite_bench_<random>`` is created there,
migrated and dropped at the end. REDIS_URL names Redis (default 127.0.0.1:6379/0).
Last line: ``p50_ms=<x> p99_ms=<y> queries=<n>``.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.benchdb import setup_django, throwaway_database, worker_environ

if TYPE_CHECKING:
    from hubsite.models import User

WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--renders", type=int, default=300)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="hubsite-bench-"))
    try:
        with throwaway_database() as database_url:
            os.environ.update(worker_environ(scratch))
            setup_django(database_url)
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            started = time.monotonic()
            user, path = _build(args.models, args.epochs)
            built = time.monotonic() - started
            print(f"built {args.models} models of {args.epochs} epochs in {built:.1f} s", flush=True)
            latencies, cpu, queries, size = _measure(user, path, args.renders)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    centiles = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"{len(latencies)} renders of a {size / 1024:.0f} KiB page; min {min(latencies):.1f} ms, "
        f"p90 {centiles[89]:.1f} ms, max {max(latencies):.1f} ms"
    )
    print(f"CPU time of this process per render (PostgreSQL's not included): median {statistics.median(cpu):.1f} ms")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs")
    print(f"p50_ms={centiles[49]:.1f} p99_ms={centiles[98]:.1f} queries={queries}")


def _build(models: int, epochs: int) -> tuple[User, str]:
    """The owner and the comparison's path."""
    from hubsite.models import User
    from tests.factories import fund
    from tests.training.compare_runs import detect_metrics, evaluate, make_run

    rng = random.Random(0)
    user = User.objects.create_user(f"bench-{secrets.token_hex(3)}@example.com", "x")
    fund(user, 1_000_000_000)
    picked = []
    for index in range(models):
        ceiling = rng.uniform(0.6, 1.0)
        history = [_noisy(detect_metrics(ceiling * epoch / epochs), rng) for epoch in range(1, epochs + 1)]
        model = make_run(
            user,
            f"run {index + 1}",
            history,
            epoch_ms=rng.randint(20_000, 40_000),
            train_args={"lr0": round(rng.choice([0.001, 0.01, 0.02]), 3), "imgsz": rng.choice([320, 640])},
        )
        evaluate(model, map50=round(ceiling * 0.8, 4), precision_at=round(ceiling, 3))
        picked.append(model)
    return user, "/models/compare/?" + "&".join(f"m={model.uid}" for model in picked)


def _noisy(metrics: dict[str, float], rng: random.Random) -> dict[str, float]:
    return {key: round(value * (1 + rng.uniform(-0.03, 0.03)), 5) for key, value in metrics.items()}


def _measure(user: User, path: str, renders: int) -> tuple[list[float], list[float], int, int]:
    """Each render's milliseconds (wall clock, and this process's CPU time), one
    render's SQL queries and the page's bytes."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    for _ in range(WARM_UP):
        response = client.get(path)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    queries = len(captured)  # now: the log is cleared when a later request reconnects
    body = response.content
    assert b"Precision-recall" in body, body[:500]
    latencies, cpu = [], []
    for _ in range(renders):
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        latencies.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
        assert response.status_code == 200, response.status_code
    return latencies, cpu, queries, len(body)


if __name__ == "__main__":
    main()
