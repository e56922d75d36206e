"""Epoch charges per second: 8 concurrent workers charging epochs across 50 accounts.

    .venv/bin/python -m benchmarks.charges [--workers 8] [--accounts 50] [--epochs 100] [--code PATH]

Each worker is a process with its own PostgreSQL connection. For every epoch it
does what the training engine does: ``hold_epoch`` before the epoch, then
``capture_epoch`` after it (each its own transaction, the account row locked);
``--without-holds`` measures ``capture_epoch`` alone.
Every worker also redelivers a share of epochs that another worker charges, at
the same time, as a crashed worker's redelivered message would. At the end it
checks that no charge was lost or duplicated: one ``epoch_charge`` line per
(session, epoch), each account's balance equal to the sum of its lines and to the
opening credit less the exact costs, no open holds left.

DATABASE_URL names a PostgreSQL server (default: the development machine's
127.0.0.1:5432); a throwaway database ``hubsite_bench_<random>`` is created there,
migrated and dropped at the end. Nothing else on that server is touched.
Last line: ``charges_per_s=<n>``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import time
from typing import Any

from benchmarks.benchdb import add_code_argument, imported_from, setup_django, throwaway_database, use_code

OPENING_CREDIT = 1_000_000_000  # US$1,000 per account: every epoch is affordable
REDELIVERED_SHARE = 0.05


def seed(accounts: int) -> list[int]:
    """One user, account (funded), model and Epochs session per account; their ids."""
    from billing import services
    from hubsite.models import User
    from training.models import Dataset, InstanceType, TrainingSession, YoloModel

    instance = InstanceType.objects.get(slug="a100-80gb")
    sessions = []
    for n in range(accounts):
        user = User.objects.create_user(f"bench{n}@example.com", None)
        services.credit_top_up(services.account_for(user).pk, OPENING_CREDIT, reference=f"bench-opening-{n}")
        dataset = Dataset.objects.create(owner=user, name="bench", status=Dataset.Status.READY)
        model = YoloModel.objects.create(owner=user, name="bench", dataset=dataset, architecture="yolo11n")
        session = TrainingSession.objects.create(
            model=model, owner=user, instance_type=instance, target_epochs=10_000, status="training", worker_id=WORKER
        )
        sessions.append(session.pk)
    return sessions


WORKER = "bench-worker"  # every process charges on behalf of the sessions' one worker


def duration_ms(session_id: int, epoch: int) -> int:
    """A deterministic, varied epoch length (5 to 65 s) so every worker agrees on it."""
    return 5_000 + (session_id * 7919 + epoch * 104_729) % 60_000


def worker(jobs: list[tuple[int, int]], with_holds: bool, start: Any, done: Any) -> None:
    from django.db import connection

    from billing import services

    start.wait()
    for session_id, epoch in jobs:
        if not with_holds or services.hold_epoch(session_id, epoch, worker_id=WORKER) is not None:
            services.capture_epoch(session_id, epoch, duration_ms(session_id, epoch), worker_id=WORKER)
    connection.close()
    done.put(len(jobs))


def check(sessions: list[int], epochs: int) -> int:
    """Raise if any charge is missing or doubled, or a balance is off; the charge count."""
    from django.db.models import Count, Sum

    from billing.models import Account, Hold, LedgerLine
    from billing.services import epoch_cost_micros
    from training.models import TrainingSession

    charges = LedgerLine.objects.filter(kind=LedgerLine.Kind.EPOCH_CHARGE)
    doubled = charges.values("session", "epoch").annotate(n=Count("id")).filter(n__gt=1).count()
    if doubled:
        raise SystemExit(f"{doubled} epochs were charged more than once")
    expected = len(sessions) * epochs
    if charges.count() != expected:
        raise SystemExit(f"{charges.count()} charges, expected {expected}")
    if Hold.objects.filter(status=Hold.Status.OPEN).exists():
        raise SystemExit("open holds left behind")
    for session in TrainingSession.objects.select_related("instance_type").filter(pk__in=sessions):
        account = Account.objects.get(user_id=session.owner_id)
        cost = sum(
            epoch_cost_micros(duration_ms(session.pk, e), session.instance_type.price_per_hour_micros)
            for e in range(1, epochs + 1)
        )
        lines = LedgerLine.objects.filter(account=account).aggregate(total=Sum("amount_micros"))["total"]
        if not account.balance_micros == lines == OPENING_CREDIT - cost or account.held_micros != 0:
            raise SystemExit(f"account {account.pk}: balance {account.balance_micros}, lines {lines}, cost {cost}")
        last = LedgerLine.objects.filter(account=account).order_by("-id").first()
        if last is None or last.balance_after_micros != account.balance_micros:
            raise SystemExit(f"account {account.pk}: the last line's balance-after is off")
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=100, help="epochs charged per account")
    parser.add_argument(
        "--without-holds", action="store_true", help="capture_epoch only (the charge itself), no hold_epoch before it"
    )
    add_code_argument(parser)
    args = parser.parse_args()
    code = use_code(args.code)

    with throwaway_database() as database_url:
        setup_django(database_url)  # DEBUG off, as in production: no per-query logging
        print(imported_from(code), flush=True)
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        sessions = seed(args.accounts)
        rng = random.Random(1)
        deliveries = [(s, e) for e in range(1, args.epochs + 1) for s in sessions]  # epochs in order per session
        shares: list[list[tuple[int, int]]] = [[] for _ in range(args.workers)]
        for i, job in enumerate(deliveries):
            shares[i % args.workers].append(job)
        redelivered = rng.sample(deliveries, int(len(deliveries) * REDELIVERED_SHARE))
        owner = {job: i % args.workers for i, job in enumerate(deliveries)}
        for i, job in enumerate(redelivered):  # to another worker than the first delivery, when there is one
            shares[(owner[job] + 1 + i % max(1, args.workers - 1)) % args.workers].append(job)
        for share in shares:
            share.sort(key=lambda job: (job[1], job[0]))  # each worker walks epochs in order, like training
        connections.close_all()  # the workers fork: none may inherit an open connection

        ctx = mp.get_context("fork")
        start, done = ctx.Event(), ctx.Queue()
        processes = [ctx.Process(target=worker, args=(share, not args.without_holds, start, done)) for share in shares]
        for process in processes:
            process.start()
        time.sleep(1)  # every worker imported and waiting
        began = time.perf_counter()
        start.set()
        calls = sum(done.get(timeout=600) for _ in processes)
        elapsed = time.perf_counter() - began
        for process in processes:
            process.join()
            if process.exitcode != 0:
                raise SystemExit(f"a worker failed with exit code {process.exitcode}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker_cpu = usage.ru_utime + usage.ru_stime

        charged = check(sessions, args.epochs)
        connections.close_all()
        print(f"workers={args.workers} accounts={args.accounts} epochs={charged} deliveries={calls}")
        unit = "capture_epoch only" if args.without_holds else "hold_epoch + capture_epoch, two transactions"
        print(f"seconds={elapsed:.2f} (each charge: {unit})")
        print(f"worker_cpu_ms_per_charge={worker_cpu / calls * 1000:.2f} (Python side; PostgreSQL's is extra)")
        print("lost=0 duplicated=0 balances=exact")
        print(f"charges_per_s={charged / elapsed:.0f}")


if __name__ == "__main__":
    main()
