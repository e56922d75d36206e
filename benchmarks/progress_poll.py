"""The live Train panel under load: 50 browsers polling a 300-epoch session.

    .venv/bin/python -m benchmarks.progress_poll [--pollers 50] [--seconds 20] [--interval 2] [--workers 3]
                                                 [--code PATH]

Builds a model that has completed 300 of 400 epochs in a session that is still
training (300 epoch records with the engine's metrics, 300 held and captured
epoch charges), starts a real server (gunicorn, ``hubsite.wsgi``) on a free
loopback port, and has ``--pollers`` clients fetch the panel fragment
(``/models/<uid>/train/panel/?seen=300`` with ``HX-Request: true`` and the owner's
session cookie) for ``--seconds`` seconds. Each poller behaves like the page's
``hx-trigger="every 2s"``: a request, then ``--interval`` seconds after the
response before the next one, starting at a random offset so the fleet is not in
lockstep (``--interval 0`` turns it into a closed loop: a capacity test). Every
response must be a 200 showing "75% Training in progress"; latency is measured
per request, from connect to the last byte. Two seconds of closed-loop polls warm
every gunicorn worker first (not counted).

``queries=`` is the number of SQL queries one render of the fragment makes
(session, user, header balance included), counted in-process through Django's
test client.

Needs PostgreSQL and Redis: DATABASE_URL names a server (a throwaway database
``hubsite_bench_<random>`` is created there and dropped at the end), REDIS_URL
the broker; defaults are the development machine's 127.0.0.1:5432 and
127.0.0.1:6379. Storage is local files in a temp dir; DEBUG is off.
Last line: ``p50_ms=<x> p99_ms=<y> queries=<n>``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from benchmarks.benchdb import (
    add_code_argument,
    fund_dollars,
    imported_from,
    setup_django,
    throwaway_database,
    training_fixtures,
    use_code,
    worker_environ,
)

EPOCHS_DONE = 300
TARGET_EPOCHS = 400
EXPECTED_TEXT = b"75% Training in progress. Checkpoint saved for epoch 300."


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between a response and the next poll")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    add_code_argument(parser)
    args = parser.parse_args()
    args.code = use_code(args.code)

    scratch = Path(tempfile.mkdtemp(prefix="hubsite-bench-"))
    try:
        with throwaway_database() as database_url:
            os.environ.update(worker_environ(scratch))
            setup_django(database_url)
            print(imported_from(args.code), flush=True)
            results, queries = _measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if results.failures:
        print(f"{len(results.failures)} failed polls, first: {results.failures[0]}", file=sys.stderr)
        sys.exit(1)
    latencies = sorted(results.latencies_ms)
    centiles = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"{len(latencies)} polls in {args.seconds:.0f} s ({len(latencies) / args.seconds:.1f}/s) by {args.pollers} "
        f"pollers every {args.interval:g} s; min {latencies[0]:.1f} ms, p90 {centiles[89]:.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )
    print(f"p50_ms={centiles[49]:.1f} p99_ms={centiles[98]:.1f} queries={queries}")


def _measure(args: argparse.Namespace, scratch: Path) -> tuple[Results, int]:
    """Migrate, build the session, serve it with gunicorn and poll it; the polls'
    results and the panel's query count."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    path, cookie = _build_session(scratch)
    print(f"built a {EPOCHS_DONE}-epoch session in {time.monotonic() - started:.1f} s; panel {path}", flush=True)
    queries = _count_queries(path)
    print(f"one render of the panel: {queries} SQL queries", flush=True)
    port = _free_port()
    server = _start_server(args, port, scratch / "gunicorn.log")
    try:
        _wait_until_serving(port, path, cookie, server, scratch / "gunicorn.log")
        print(f"gunicorn on 127.0.0.1:{port}: {args.workers} workers x {args.threads} threads", flush=True)
        warm_up = _poll(argparse.Namespace(pollers=2 * args.workers * args.threads, seconds=2.0, interval=0.0),
                        port, path, cookie)  # fmt: skip
        print(f"warm-up: {len(warm_up.latencies_ms)} polls in 2 s, not counted", flush=True)
        print(f"load before polling: {_load()}", flush=True)
        results = _poll(args, port, path, cookie)
        print(f"load after polling: {_load()}", flush=True)
    finally:
        _stop_server(server)
    return results, queries


def _build_session(scratch: Path) -> tuple[str, str]:
    """A model 300 epochs into a 400-epoch session that is training now; the panel's
    path and the owner's session cookie."""
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from billing import services as billing
    from hubsite.models import User
    from training.models import EpochRecord, TrainingSession

    fixtures = training_fixtures()
    user = User.objects.create_user(f"bench-{secrets.token_hex(3)}@example.com", "x")
    fund_dollars(fixtures, user, 100)
    dataset = fixtures.make_ready_dataset(user, scratch, train_images=8, val_images=4)
    model = fixtures.make_model(user, dataset, epochs=TARGET_EPOCHS)
    rng = random.Random(0)
    durations = [rng.randint(1000, 1400) for _ in range(EPOCHS_DONE)]  # tiny model on the CPU instance
    now = timezone.now()
    began = now - timedelta(milliseconds=sum(durations) + 30_000)  # setup took 30 s
    session = TrainingSession.objects.create(
        model=model,
        owner=user,
        instance_type=fixtures.cpu_instance(),
        target_epochs=TARGET_EPOCHS,
        status=TrainingSession.Status.TRAINING,
        attempts=1,
        worker_id=f"bench-worker-{secrets.token_hex(3)}",
        claimed_at=began - timedelta(seconds=10),
        training_started_at=began,
        heartbeat_at=now,
    )
    records = []
    finished = began
    for epoch, duration_ms in enumerate(durations, start=1):
        assert billing.hold_epoch(session.pk, epoch, worker_id=session.worker_id) is not None, "the bench ran dry"
        billing.capture_epoch(session.pk, epoch, duration_ms, worker_id=session.worker_id)
        started, finished = finished, finished + timedelta(milliseconds=duration_ms)
        records.append(
            EpochRecord(
                session=session,
                model=model,
                epoch=epoch,
                started_at=started,
                finished_at=finished,
                duration_ms=duration_ms,
                metrics=_metrics(epoch, rng),
            )
        )
    EpochRecord.objects.bulk_create(records)
    model.epochs_completed = EPOCHS_DONE
    model.last_checkpoint.name = f"{model.storage_prefix}/last.pt"
    model.best_weights.name = f"{model.storage_prefix}/best.pt"
    model.save()

    client = Client()
    client.force_login(user)
    path = reverse("training:train_panel", args=[model.uid]) + f"?seen={EPOCHS_DONE}"
    return path, client.cookies[settings.SESSION_COOKIE_NAME].value


def _metrics(epoch: int, rng: random.Random) -> dict[str, float]:
    """What the engine records per epoch: metrics rising, losses falling, a little noise."""
    progress = epoch / TARGET_EPOCHS

    def noisy(value: float) -> float:
        return round(max(0.0, value * (1 + rng.uniform(-0.03, 0.03))), 5)

    return {
        "precision": noisy(0.2 + 0.7 * progress),
        "recall": noisy(0.15 + 0.7 * progress),
        "map50": noisy(0.1 + 0.75 * progress),
        "map50_95": noisy(0.05 + 0.55 * progress),
        "train_box_loss": noisy(2.0 - 1.2 * progress),
        "train_cls_loss": noisy(3.0 - 2.4 * progress),
        "train_dfl_loss": noisy(1.6 - 0.6 * progress),
        "val_box_loss": noisy(2.1 - 1.1 * progress),
        "val_cls_loss": noisy(3.2 - 2.3 * progress),
        "val_dfl_loss": noisy(1.7 - 0.6 * progress),
        "lr": round(0.01 * (1 - 0.99 * progress), 6),
    }


def _count_queries(path: str) -> int:
    """SQL queries in one render of the fragment (after a warm-up render)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from hubsite.models import User

    client = Client()
    client.force_login(User.objects.get())
    client.get(path, headers={"HX-Request": "true"})
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.status_code
    assert EXPECTED_TEXT in response.content, response.content[:500]
    return len(queries)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "hubsite.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
        "--backlog", "256", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as output:
        return subprocess.Popen(
            command, cwd=args.code, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ
        )


def _wait_until_serving(port: int, path: str, cookie: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            status, body = _get(port, path, cookie)
            if status == 200 and EXPECTED_TEXT in body:
                return
            raise RuntimeError(f"the server answered {status}: {body[:300]!r}")
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not come up in 60 s: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _get(port: int, path: str, cookie: str) -> tuple[int, bytes]:
    from django.conf import settings

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "GET", path, headers={"HX-Request": "true", "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _poll(args: argparse.Namespace, port: int, path: str, cookie: str) -> Results:
    results = Results()
    stop_at = time.monotonic() + args.seconds

    def poller(offset: float) -> None:
        time.sleep(offset)
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            try:
                status, body = _get(port, path, cookie)
            except OSError as error:
                outcome: float | str = f"{type(error).__name__}: {error}"
            else:
                elapsed_ms = (time.perf_counter() - began) * 1000
                ok = status == 200 and EXPECTED_TEXT in body
                outcome = elapsed_ms if ok else f"status {status}: {body[:200]!r}"
            with results.lock:
                if isinstance(outcome, str):
                    results.failures.append(outcome)
                else:
                    results.latencies_ms.append(outcome)
            if args.interval:
                time.sleep(args.interval)

    threads = [
        threading.Thread(target=poller, args=(random.uniform(0, args.interval),), daemon=True)
        for _ in range(args.pollers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.seconds + 60)
    return results


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
