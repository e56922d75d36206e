"""What the platform's worker path adds to bare ultralytics training, per epoch.

    .venv/bin/python -m benchmarks.overhead [--rounds 100] [--epochs 12] [--images 64] [--torch-threads 1]
                                            [--claims 5] [--code PATH]

Trains the same model (yolo11n.yaml from scratch, seed 0) on the same synthetic
dataset with the same arguments, alternating bare ``YOLO(...).train(...)`` and the
platform's ``run_session`` (callbacks, heartbeat thread, database writes, billing
holds and charges, checkpoint uploads to storage): a warm-up run, then bare,
platform, bare, platform, ..., bare. It reports:

- ``callbacks_ms_per_epoch``: wall time on the training thread inside the
  platform's callbacks (every ``on_*`` method of
  ``training.engine.runner.EpochCallbacks``, wrapped from here), per epoch; and
  their CPU time (``callbacks_cpu_ms_per_epoch``);
- ``committer_cpu_ms_per_epoch`` and ``heartbeat_cpu_ms_per_epoch``: the CPU time
  of the ``EpochCommitter`` and ``Heartbeat`` threads (``time.thread_time()``
  around their ``run``), divided by the session's epochs;
- ``overhead_ratio``: the median over rounds of platform / bare epoch time, each
  platform run against the mean of the bare runs either side of it, with the
  spread of those ratios and a bootstrap 95 % interval of their median
  (``overhead_ratio_ci95``, how precise this run's figure is). An epoch's time
  is the gap between consecutive epoch starts, so it includes everything at the
  epoch boundary; the first ``--warmup`` epochs and the last (no next start) are
  left out, and the same epochs are summed in both kinds of run (seeded training does the same work
  epoch by epoch, which differs from one epoch to the next).

Torch runs ``--torch-threads`` threads in both kinds of run (default 1, so the
platform's own threads and PostgreSQL have the second core, as on a machine with
more cores than torch uses; 0 = every core, as the platform sets it).

Then ``claim_latency_ms``: from a Start committing to a real idle worker process
claiming the session (``--claims 0`` skips it).

Needs PostgreSQL and Redis: DATABASE_URL names a server (a throwaway database is
created there and dropped), REDIS_URL the broker; defaults are the development
machine's 127.0.0.1:5432 and 127.0.0.1:6379. Storage is local files in a temp
dir; DEBUG is off, as in production. Last lines: ``claim_latency_ms=<median>``
(when measured) then ``overhead_ratio=<median>``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from benchmarks.benchdb import (
    add_code_argument,
    fund_dollars,
    imported_from,
    presence_module,
    setup_django,
    throwaway_database,
    training_fixtures,
    use_code,
    worker_environ,
)

if TYPE_CHECKING:
    from hubsite.models import User
    from training.models import YoloModel

RUNNER = "training.engine.runner"
WRAPPED = ("EpochCallbacks", "EpochCommitter", "Heartbeat", "run_session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100, help="platform runs, each between two bare runs")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per run")
    parser.add_argument("--warmup", type=int, default=2, help="first epochs of each run left out")
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--images", type=int, default=64, help="training images (a quarter as many to validate)")
    parser.add_argument("--torch-threads", type=int, default=1, help="0: every core, as the platform sets it")
    parser.add_argument("--claims", type=int, default=5, help="Starts timed to a worker's claim; 0 skips")
    parser.add_argument("--raw", type=Path, help="also write every run's epoch times and probes here (JSON)")
    add_code_argument(parser)
    args = parser.parse_args()
    if args.epochs < args.warmup + 2:
        parser.error("--epochs must leave at least one measured epoch after --warmup and before the last")
    code = use_code(args.code)
    threads = args.torch_threads or os.cpu_count() or 1

    scratch = Path(tempfile.mkdtemp(prefix="hubsite-bench-"))
    print(f"load before: {_load()}", flush=True)
    try:
        with throwaway_database() as database_url:
            os.environ.update(worker_environ(scratch))
            # Plans off: the bench user may start sessions without a subscription (what a plan
            # check costs happens before the Start commits, outside what is timed here).
            setup_django(database_url, TRAINING_DEVICE="cpu", WORKER_PRESENCE_INTERVAL_SECONDS="1", PLANS_ENABLED="0")
            print(imported_from(code), flush=True)
            _runner()  # fail now, not after the first runs, if a wrapped name moved
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            bare, platform = _compare(args, threads, scratch)
            if args.raw:  # before the claims, so that a failure there keeps the hour of rounds
                args.raw.write_text(json.dumps(_raw(bare, platform), indent=1))
            claim_ms = _claim_latency(args.claims, scratch, code) if args.claims else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # a run's checkpoints: about 150 MB
    print(f"load after: {_load()}", flush=True)
    _report(args, threads, bare, platform, claim_ms)


# -- what is measured ----------------------------------------------------------------


class EpochClock:
    """Epoch start times of one run, taken at ``on_train_epoch_start`` in both kinds of
    run: wall clock, and the CPU time of the whole process (every thread)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.cpu_starts: list[float] = []

    def start(self, trainer: Any) -> None:
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())

    def epoch_seconds(self, cpu: bool = False) -> list[float]:
        """Epoch k's time (k from 1): from its start to the next epoch's start."""
        starts = self.cpu_starts if cpu else self.starts
        return [later - earlier for earlier, later in itertools.pairwise(starts)]


@dataclass
class Probe:
    """What one platform run spent in the platform's code."""

    clock: EpochClock = field(default_factory=EpochClock)
    epoch: int = 0  # the epoch running on the training thread; 0 before the first
    callback_wall: dict[int, float] = field(default_factory=lambda: collections.defaultdict(float))  # s per epoch
    callback_cpu: dict[int, float] = field(default_factory=lambda: collections.defaultdict(float))
    method_wall: dict[tuple[str, int], float] = field(default_factory=lambda: collections.defaultdict(float))
    method_calls: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    committer_cpu: float = 0.0
    heartbeat_cpu: float = 0.0


class Instruments:
    """Wraps the platform's callbacks and thread bodies (class attributes, restored
    afterwards) so that each platform run fills the current ``probe``."""

    def __init__(self, torch_threads: int) -> None:
        self.torch_threads = torch_threads
        self.probe = Probe()

    @contextmanager
    def installed(self) -> Iterator[None]:
        runner, methods = _runner()
        callbacks = runner.EpochCallbacks
        patches = [(callbacks, name, self._timed_callback(name, getattr(callbacks, name))) for name in methods]
        patches += [
            (runner.EpochCommitter, "run", self._thread_cpu(runner.EpochCommitter.run, "committer_cpu")),
            (runner.Heartbeat, "run", self._thread_cpu(runner.Heartbeat.run, "heartbeat_cpu")),
        ]
        originals = [(owner, name, vars(owner).get(name)) for owner, name, _ in patches]
        try:
            for owner, name, wrapper in patches:
                setattr(owner, name, wrapper)
            yield
        finally:
            for owner, name, original in originals:
                if original is None:
                    delattr(owner, name)  # it was inherited
                else:
                    setattr(owner, name, original)

    def _timed_callback(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(callbacks: Any, trainer: Any, *args: Any, **kwargs: Any) -> Any:
            probe = self.probe
            if name == "on_train_epoch_start":
                probe.clock.start(trainer)
                probe.epoch = trainer.epoch + 1
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return method(callbacks, trainer, *args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                probe.callback_wall[probe.epoch] += wall
                probe.callback_cpu[probe.epoch] += cpu
                probe.method_wall[name, probe.epoch] += wall
                probe.method_calls[name, probe.epoch] += 1
                if name == "on_train_start":
                    _set_torch_threads(self.torch_threads)  # after the platform's own choice, untimed

        return timed

    def _thread_cpu(self, run: Callable[[Any], None], total: str) -> Callable[[Any], None]:
        @functools.wraps(run)
        def measured(thread: Any) -> None:
            probe = self.probe
            began = time.thread_time()
            try:
                run(thread)
            finally:
                setattr(probe, total, getattr(probe, total) + time.thread_time() - began)

        return measured


def _runner() -> tuple[ModuleType, list[str]]:
    """The platform's worker module, checked for the names this benchmark wraps, and
    the callback methods of its EpochCallbacks."""
    try:
        runner = importlib.import_module(RUNNER)
    except ImportError as error:
        raise SystemExit(f"cannot import {RUNNER} ({error}): the benchmark wraps {', '.join(WRAPPED)} there") from None
    missing = [name for name in WRAPPED if not hasattr(runner, name)]
    if missing:
        raise SystemExit(f"{RUNNER} ({runner.__file__}) has no {', '.join(missing)}: the benchmark wraps them")
    callbacks = runner.EpochCallbacks
    methods = [name for name in dir(callbacks) if name.startswith("on_") and callable(getattr(callbacks, name))]
    for needed in ("on_train_start", "on_train_epoch_start"):
        if needed not in methods:
            raise SystemExit(f"{RUNNER}.EpochCallbacks has no {needed}: the benchmark times epochs from it")
    return runner, methods


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# -- the runs --------------------------------------------------------------------------


def _compare(args: argparse.Namespace, threads: int, scratch: Path) -> tuple[list[EpochClock], list[Probe]]:
    """A warm-up run, then bare, platform, bare, ..., bare: the bare runs' clocks (one
    more than the rounds) and the platform runs' probes."""
    from hubsite.models import User
    from training.datasets import prepare_local_copy

    fixtures = training_fixtures()
    user = User.objects.create_user(f"bench-{secrets.token_hex(3)}@example.com", "x")
    fund_dollars(fixtures, user, 1000)
    dataset = fixtures.make_ready_dataset(user, scratch, train_images=args.images, val_images=max(8, args.images // 4))
    data_yaml = prepare_local_copy(dataset, scratch / "bare-cache")
    arguments = {**fixtures.TINY_TRAINING, "imgsz": args.imgsz, "epochs": args.epochs}
    instruments = Instruments(threads)
    started = time.monotonic()
    _bare_run(data_yaml, {**arguments, "epochs": 3}, threads, scratch / "warm-up")
    print(f"warm-up run: {time.monotonic() - started:.1f} s", flush=True)
    bare = [_bare_run(data_yaml, arguments, threads, scratch / "bare-0")]
    platform: list[Probe] = []
    with instruments.installed():
        for round_number in range(1, args.rounds + 1):
            instruments.probe = Probe()
            _platform_run(user, fixtures.make_model(user, dataset, **arguments))
            platform.append(instruments.probe)
            bare.append(_bare_run(data_yaml, arguments, threads, scratch / f"bare-{round_number}"))
            print(_round_line(round_number, bare[-2], platform[-1], bare[-1], args.warmup), flush=True)
    return bare, platform


def _bare_run(data_yaml: Path, arguments: dict[str, object], threads: int, save_dir: Path) -> EpochClock:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    clock = EpochClock()
    yolo = YOLO("yolo11n.yaml")
    yolo.add_callback("on_train_start", lambda trainer: _set_torch_threads(threads))
    yolo.add_callback("on_train_epoch_start", clock.start)
    yolo.train(data=str(data_yaml), save_dir=str(save_dir), exist_ok=True, workers=0, plots=False,
               verbose=False, device="cpu", **arguments)  # fmt: skip
    shutil.rmtree(save_dir, ignore_errors=True)  # 11 MB of weights a run, a hundred runs
    return clock


def _platform_run(user: User, model: YoloModel) -> None:
    from training.models import TrainingSession

    new_worker_id = presence_module().new_worker_id

    session = TrainingSession.objects.create(
        model=model,
        owner=user,
        instance_type=training_fixtures().cpu_instance(),
        target_epochs=model.target_epochs,
    )
    runner, _ = _runner()
    runner.run_session(session.pk, new_worker_id())
    session.refresh_from_db()
    assert session.status == TrainingSession.Status.COMPLETED, session.failure_reason


# -- figures --------------------------------------------------------------------------


def _measured(clock: EpochClock, warmup: int, cpu: bool = False) -> list[float]:
    return clock.epoch_seconds(cpu)[warmup:]


def _sum(clock: EpochClock, warmup: int, cpu: bool = False) -> float:
    return sum(_measured(clock, warmup, cpu))


def _round_ratio(before: EpochClock, platform: EpochClock, after: EpochClock, warmup: int, cpu: bool = False) -> float:
    """The platform run's measured epochs against the mean of the bare runs either side."""
    bare = (_sum(before, warmup, cpu) + _sum(after, warmup, cpu)) / 2
    return _sum(platform, warmup, cpu) / bare


def _round_ratios(bare: list[EpochClock], probes: list[Probe], warmup: int, cpu: bool = False) -> list[float]:
    return [_round_ratio(bare[i], probe.clock, bare[i + 1], warmup, cpu) for i, probe in enumerate(probes)]


def _spread(name: str, ratios: list[float]) -> str:
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    return (
        f"{name}_median={quartiles[1]:.4f} {name}_iqr={quartiles[0]:.4f}-{quartiles[2]:.4f} "
        f"{name}_range={min(ratios):.4f}-{max(ratios):.4f}"
    )


def _median_interval(ratios: list[float], resamples: int = 4000) -> tuple[float, float]:
    """A bootstrap 95 % interval of the median (percentile method, fixed seed)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return medians[round(resamples * 0.025)], medians[round(resamples * 0.975) - 1]


def _round_line(round_number: int, before: EpochClock, probe: Probe, after: EpochClock, warmup: int) -> str:
    ratio = _round_ratio(before, probe.clock, after, warmup)
    cpu_ratio = _round_ratio(before, probe.clock, after, warmup, cpu=True)
    return (
        f"round {round_number}: platform/bare {ratio:.4f} (CPU {cpu_ratio:.4f}); measured epochs bare "
        f"{_sum(after, warmup):.3f} s, platform {_sum(probe.clock, warmup):.3f} s; "
        f"callbacks {_callback_ms(probe, warmup):.1f} ms/epoch; {_load()}"
    )


def _raw(bare: list[EpochClock], probes: list[Probe]) -> dict[str, Any]:
    def clock(run: EpochClock) -> dict[str, list[float]]:
        return {"wall_s": run.epoch_seconds(), "cpu_s": run.epoch_seconds(cpu=True)}

    def platform(probe: Probe) -> dict[str, Any]:
        epochs = range(len(probe.clock.starts) + 1)  # 0: before the first epoch
        return {
            **clock(probe.clock),
            "callbacks_wall_s_by_epoch": [probe.callback_wall.get(epoch, 0.0) for epoch in epochs],
            "callbacks_cpu_s_by_epoch": [probe.callback_cpu.get(epoch, 0.0) for epoch in epochs],
            "committer_cpu_s": probe.committer_cpu,
            "heartbeat_cpu_s": probe.heartbeat_cpu,
        }

    return {"bare": [clock(run) for run in bare], "platform": [platform(probe) for probe in probes]}


def _measured_epochs(probe: Probe, warmup: int) -> range:
    return range(warmup + 1, len(probe.clock.starts))


def _callback_ms(probe: Probe, warmup: int, counter: str = "callback_wall") -> float:
    epochs = _measured_epochs(probe, warmup)
    per_epoch: dict[int, float] = getattr(probe, counter)
    return sum(per_epoch.get(epoch, 0.0) for epoch in epochs) / len(epochs) * 1000


def _report(
    args: argparse.Namespace, threads: int, bare: list[EpochClock], probes: list[Probe], claim_ms: float | None
) -> None:
    warmup = args.warmup
    bare_epochs = [s for clock in bare for s in _measured(clock, warmup)]
    platform_epochs = [s for probe in probes for s in _measured(probe.clock, warmup)]
    measured = len(_measured(bare[0], warmup))
    print(f"bare_epoch_s={statistics.median(bare_epochs):.4f} platform_epoch_s={statistics.median(platform_epochs):.4f}"
          f" (median; epochs {warmup + 1}-{warmup + measured} of {args.epochs}, {args.images} images at "
          f"{args.imgsz} px, torch threads {threads}, {len(bare)} bare and {len(probes)} platform runs)")  # fmt: skip

    callbacks_ms = statistics.mean(_callback_ms(probe, warmup) for probe in probes)
    callbacks_cpu_ms = statistics.mean(_callback_ms(probe, warmup, "callback_cpu") for probe in probes)
    print(f"callbacks_ms_per_epoch={callbacks_ms:.2f} callbacks_cpu_ms_per_epoch={callbacks_cpu_ms:.2f} "
          f"(training thread, inside EpochCallbacks, mean of the measured epochs)")  # fmt: skip
    epochs = [(probe, epoch) for probe in probes for epoch in _measured_epochs(probe, warmup)]
    for name in sorted({name for name, epoch in probes[0].method_calls if epoch > warmup}):
        wall = sum(probe.method_wall.get((name, epoch), 0.0) for probe, epoch in epochs) / len(epochs) * 1000
        calls = sum(probe.method_calls[name, epoch] for probe, epoch in epochs) / len(epochs)
        print(f"  {name}: {wall:.2f} ms per epoch in {calls:g} calls")
    setup_ms = statistics.mean(probe.callback_wall.get(0, 0.0) for probe in probes) * 1000
    print(f"  on_train_start, once per run: {setup_ms:.2f} ms")

    committer = statistics.mean(probe.committer_cpu for probe in probes) / args.epochs * 1000
    heartbeat = statistics.mean(probe.heartbeat_cpu for probe in probes) / args.epochs * 1000
    print(f"committer_cpu_ms_per_epoch={committer:.2f} heartbeat_cpu_ms_per_epoch={heartbeat:.2f} "
          f"(each thread's CPU over the whole session / {args.epochs} epochs)")  # fmt: skip
    added_ms = callbacks_ms + committer + heartbeat
    print(f"direct_overhead_ratio={1 + added_ms / (statistics.median(bare_epochs) * 1000):.4f} "
          "(1 + (callbacks wall + committer CPU + heartbeat CPU) / the median bare epoch: what the platform "
          "adds, measured, with its threads' CPU counted as if taken from training)")  # fmt: skip

    ratios = _round_ratios(bare, probes, warmup)
    print("overhead_ratio_rounds=" + ",".join(f"{ratio:.4f}" for ratio in ratios))
    print(_spread("overhead_ratio", ratios) + " (platform/bare epoch wall time, per round)")
    low, high = _median_interval(ratios)
    print(f"overhead_ratio_ci95={low:.4f}-{high:.4f} (bootstrap interval of the median over {len(ratios)} rounds)")
    print(_spread("cpu_ratio", _round_ratios(bare, probes, warmup, cpu=True)) + " (the same, process CPU time)")
    if claim_ms is not None:
        print(f"claim_latency_ms={claim_ms:.0f}")
    print(f"overhead_ratio={statistics.median(ratios):.4f}")


# -- claim latency ----------------------------------------------------------------------


def _claim_latency(claims: int, scratch: Path, code: Path) -> float:
    from django.utils import timezone

    from hubsite.models import User
    from training import sessions
    from training.models import TrainingSession

    live_queues = presence_module().live_queues

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "1", "--queues", "train.cpu"],
        cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "train.cpu" not in live_queues():
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not come up")
            time.sleep(0.2)
        user = User.objects.get()
        fixtures = training_fixtures()
        dataset = fixtures.make_ready_dataset(user, scratch / "claims", train_images=8, val_images=8)
        latencies: list[float] = []
        for _ in range(claims):
            model = fixtures.make_model(user, dataset, epochs=1)
            start = sessions.StartRequest(instance_type=fixtures.cpu_instance())
            session = sessions.start_session(user, model, start)
            committed = timezone.now()
            while not (claimed := TrainingSession.objects.get(pk=session.pk)).claimed_at:
                time.sleep(0.002)
            latencies.append((claimed.claimed_at - committed).total_seconds() * 1000)
            sessions.request_stop(claimed)
            while TrainingSession.objects.get(pk=session.pk).status not in TrainingSession.FINAL_STATUSES:
                time.sleep(0.1)
        print("claim_latencies_ms=" + ",".join(f"{latency:.0f}" for latency in latencies))
        return statistics.median(latencies)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


if __name__ == "__main__":
    main()
