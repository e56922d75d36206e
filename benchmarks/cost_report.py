"""Streaming a 100,000-line cost report: rows per second and memory growth.

    .venv/bin/python -m benchmarks.cost_report [--lines 100000]

Creates one model whose sessions have ``--lines`` epoch charges in the ledger
(written with one INSERT ... SELECT generate_series, a consistent running balance),
then, in a fresh process, requests the model's cost report through the real view
(``billing.views.model_cost_report``: StreamingHttpResponse over a server-side
cursor) and reads the whole body. Memory is the process's peak RSS (VmHWM, reset
to the current RSS just before the request) minus its RSS before it. A second,
untimed pass checks that the CSV holds every line and that its amounts add up to
the model's total to the micro-dollar.

DATABASE_URL names a PostgreSQL server (default: the development machine's
127.0.0.1:5432); a throwaway database ``hubsite_bench_<random>`` is created there,
migrated and dropped at the end. Nothing else on that server is touched.
Last line: ``rows_per_s=<n> peak_rss_growth_mb=<m>``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from benchmarks.benchdb import setup_django, throwaway_database

EPOCHS_PER_SESSION = 1_000
CHARGE = 1_234  # micro-dollars per epoch


def seed(lines: int) -> tuple[int, int]:
    """A user and model with ``lines`` charged epochs; (user id, model id)."""
    from django.db import connection

    from billing.models import Account, LedgerLine
    from hubsite.models import User
    from training.models import Dataset, InstanceType, TrainingSession, YoloModel

    user = User.objects.create_user("report@example.com", None)
    account = Account.objects.get(user=user)
    dataset = Dataset.objects.create(owner=user, name="bench", status=Dataset.Status.READY)
    model = YoloModel.objects.create(owner=user, name="bench", dataset=dataset, architecture="yolo11n")
    instance = InstanceType.objects.get(slug="h100-80gb")
    sessions = [
        TrainingSession.objects.create(
            model=model, owner=user, instance_type=instance, target_epochs=EPOCHS_PER_SESSION, status="stopped"
        ).pk
        for _ in range(-(-lines // EPOCHS_PER_SESSION))
    ]
    opening = lines * CHARGE
    with connection.cursor() as cursor:
        # Fixture data written straight to the tables, consistent with what
        # billing.services would have written: balance_after runs down to zero.
        cursor.execute(
            f"""
            INSERT INTO {LedgerLine._meta.db_table}
                (account_id, kind, amount_micros, balance_after_micros, session_id, epoch, duration_ms,
                 price_per_hour_micros, reference, reason, created_at)
            SELECT %s, 'epoch_charge', -%s, %s - i * %s, (%s::bigint[])[(i - 1) / %s + 1],
                   (i - 1) %% %s + 1, 1486, 2990000, 'session epoch', '',
                   now() - interval '1 second' * (%s - i)
            FROM generate_series(1, %s) AS i
            """,  # noqa: S608 - table name from the model
            [account.pk, CHARGE, opening, CHARGE, sessions, EPOCHS_PER_SESSION, EPOCHS_PER_SESSION, lines, lines],
        )
    return user.pk, model.pk


def vm_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure(database_url: str, user_id: int, model_id: int, result: Any) -> None:
    """In a fresh process: stream the report once (timed), then check it (untimed)."""
    setup_django(database_url)  # DEBUG off, as in production: no per-query logging
    import gc

    from django.test import RequestFactory

    from billing import reports, views
    from hubsite.http import AuthenticatedRequest
    from hubsite.models import User
    from training.models import YoloModel

    user = User.objects.get(pk=user_id)
    url = f"/billing/models/{model_id}/cost-report.csv"

    def request() -> Any:
        req = RequestFactory().get(url)
        req.user = user
        return views.model_cost_report(cast("AuthenticatedRequest", req), model_id)

    for _chunk in request().streaming_content:  # warm up: imports, connection, query plans
        pass
    gc.collect()
    # Reset the peak RSS to the current RSS (Linux >= 4.0); without it the warm-up's
    # peak would hide any growth, so refuse to report a number.
    Path("/proc/self/clear_refs").write_text("5")
    rss_before = vm_kb("VmRSS")
    if vm_kb("VmHWM") > rss_before + 1024:
        raise RuntimeError("could not reset the peak RSS")
    began = time.perf_counter()
    newlines = 0
    size = 0
    for chunk in request().streaming_content:
        newlines += chunk.count(b"\n")
        size += len(chunk)
    elapsed = time.perf_counter() - began
    growth_kb = vm_kb("VmHWM") - rss_before

    rows = newlines - 1
    total = Decimal(0)
    amount_column = reports.COST_REPORT_HEADER.index("amount_usd")
    for line in b"".join(request().streaming_content).decode().splitlines()[1:]:
        total += Decimal(line.split(",")[amount_column])
    expected = reports.model_total_micros(YoloModel.objects.get(pk=model_id))
    result.put((rows, elapsed, growth_kb, size, int(total * 1_000_000), expected))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()

    with throwaway_database() as database_url:
        setup_django(database_url)
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        user_id, model_id = seed(args.lines)
        connections.close_all()

        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing from the seeding in its memory
        result = ctx.Queue()
        process = ctx.Process(target=measure, args=(database_url, user_id, model_id, result))
        process.start()
        process.join(timeout=600)
        if result.empty():
            raise SystemExit(f"the measuring process failed (exit code {process.exitcode})")
        rows, elapsed, growth_kb, size, csv_total, ledger_total = result.get()
        if rows != args.lines:
            raise SystemExit(f"the report has {rows} rows, expected {args.lines}")
        if csv_total != ledger_total:
            raise SystemExit(f"the CSV adds up to {csv_total} micro-dollars, the ledger to {ledger_total}")
        print(f"rows={rows} bytes={size} seconds={elapsed:.2f} csv_total_micros={csv_total} (equals the ledger)")
        print(f"rows_per_s={rows / elapsed:.0f} peak_rss_growth_mb={growth_kb / 1024:.1f}")


if __name__ == "__main__":
    main()
