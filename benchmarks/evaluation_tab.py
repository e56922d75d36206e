"""Rendering the Evaluation tab of a model with a finished evaluation of many classes.

    .venv/bin/python -m benchmarks.evaluation_tab [--classes 20] [--renders 300] [--epochs 100]

Builds a model with ``--epochs`` epoch records (the model page reads them for every
tab) and a done evaluation of ``--classes`` classes written as the worker writes one
(per-class rows, four curves of 101 points for every class and all of them, the
confusion matrix, three pairs of validation pictures: ``tests/training/evaluation/
helpers.py``), then renders the tab ``--renders`` times in this process through
Django's test client, signed in as the owner: the HTMX fragment a tab click fetches,
and the whole page. Latency is from the request to the full response body; ten
renders of each warm up first (not counted). The rendered results of a done
evaluation are cached per evaluation (the tab reads its state, not its bulk, on a
hit): "first render" clears the cache before each render, as the first view after an
evaluation finds it.

``queries=`` is the number of SQL queries one render of the page makes, session and
user included; the tests check that it does not grow with the number of classes.

Needs PostgreSQL and Redis: DATABASE_URL names a server (a throwaway database
``hubsite_bench_<random>`` is created there and dropped at the end), REDIS_URL the
Redis server. Storage is local files in a temp dir; DEBUG is off.
Last line (the whole page): ``p50_ms=<x> p99_ms=<y> queries=<n>``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.benchdb import setup_django, throwaway_database, worker_environ

WARM_UP = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--renders", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="hubsite-bench-"))
    try:
        with throwaway_database() as database_url:
            os.environ.update(worker_environ(scratch))
            setup_django(database_url)
            _measure(args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _measure(args: argparse.Namespace) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    path, client = _build(args)
    fragment = {"HX-Request": "true"}
    variants: tuple[tuple[str, dict[str, str], bool], ...] = (
        ("fragment, first render", fragment, True),
        ("fragment", fragment, False),
        ("page", {}, False),
    )
    for label, headers, cold in variants:
        latencies = _render(client, path, headers, args.renders, cold=cold)
        centiles = statistics.quantiles(latencies, n=100, method="inclusive")
        print(
            f"{label}: {args.renders} renders, {args.classes} classes; min {latencies[0]:.1f} ms, "
            f"p50 {centiles[49]:.1f} ms, p99 {centiles[98]:.1f} ms, max {latencies[-1]:.1f} ms",
            flush=True,
        )
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    print(f"p50_ms={centiles[49]:.1f} p99_ms={centiles[98]:.1f} queries={len(queries)}")


def _build(args: argparse.Namespace) -> tuple[str, Any]:
    from django.test import Client
    from django.utils import timezone

    from hubsite.models import User
    from tests.factories import make_model, make_session
    from tests.training.evaluation.helpers import done_evaluation
    from training.models import EpochRecord, TrainingSession

    user = User.objects.create_user(f"bench-{secrets.token_hex(3)}@example.com", "x")
    model = make_model(user)
    session = make_session(user, model=model, status=TrainingSession.Status.COMPLETED)
    now = timezone.now()
    EpochRecord.objects.bulk_create(
        EpochRecord(
            session=session,
            model=model,
            epoch=epoch,
            started_at=now,
            finished_at=now,
            duration_ms=1200,
            metrics={"precision": 0.5, "recall": 0.5, "map50": 0.5, "map50_95": 0.4, "train_box_loss": 1.0},
        )
        for epoch in range(1, args.epochs + 1)
    )
    model.epochs_completed = args.epochs
    model.best_weights.name = f"{model.storage_prefix}/best.pt"
    model.save()
    done_evaluation(model, classes=args.classes)
    client = Client()
    client.force_login(user)
    return f"/models/{model.uid}/?tab=evaluation", client


def _render(client: Any, path: str, headers: dict[str, str], renders: int, *, cold: bool) -> list[float]:
    """Latencies of ``renders`` renders, sorted; ``cold``: with the rendered results not
    cached yet (as the first view after an evaluation), else cached."""
    from django.core.cache import cache

    for _ in range(WARM_UP):
        client.get(path, headers=headers)
    latencies = []
    for _ in range(renders):
        if cold:
            cache.clear()
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        assert b"Confusion matrix" in response.content
    return sorted(latencies)


if __name__ == "__main__":
    main()
