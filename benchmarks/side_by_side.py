"""One benchmark, two checkouts, alternated in one sitting: old code against new.

    .venv/bin/python -m benchmarks.side_by_side --old OLD --new NEW --bench overhead|charges|progress_poll
                                                [--rounds 3] [--logs DIR] [-- BENCHMARK ARGUMENTS]

Runs ``python -m benchmarks.<bench> --code TREE`` old, new, old, new, ... (``--rounds``
runs of each). The benchmark script always comes from NEW (the subprocess runs
there); only the application code it measures (hubsite, training, billing, the
tests' fixtures, and the worker and gunicorn processes it starts) comes from
TREE. Each benchmark checks where it imported the application from and says so
in its log. Arguments after ``--`` go to every run of the benchmark.

Prints each run's figures as it ends, with the load average before it; then, per
tree, every figure's median and range, and new/old of the medians. Each run's
full output is kept in ``--logs`` (a temp dir by default).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIGURES = {
    "overhead": (
        "overhead_ratio",
        "direct_overhead_ratio",
        "cpu_ratio_median",
        "callbacks_ms_per_epoch",
        "callbacks_cpu_ms_per_epoch",
        "committer_cpu_ms_per_epoch",
        "heartbeat_cpu_ms_per_epoch",
        "bare_epoch_s",
        "claim_latency_ms",
    ),
    "charges": ("charges_per_s", "worker_cpu_ms_per_charge"),
    "progress_poll": ("p50_ms", "p99_ms", "queries"),
}
FIGURE = re.compile(r"\b(\w+)=(-?\d+(?:\.\d+)?)(?=[\s(]|$)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True, help="checkout of the old code")
    parser.add_argument("--new", type=Path, required=True, help="checkout of the new code, benchmarks too")
    parser.add_argument("--bench", choices=sorted(FIGURES), required=True)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree")
    parser.add_argument("--logs", type=Path, help="where each run's output goes (default: a new temp dir)")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then arguments for the benchmark")
    args = parser.parse_args()
    extra = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    if not (trees["new"] / "benchmarks" / f"{args.bench}.py").is_file():
        parser.error(f"{trees['new']} has no benchmarks/{args.bench}.py")
    logs = args.logs or Path(tempfile.mkdtemp(prefix=f"side-by-side-{args.bench}-"))
    logs.mkdir(parents=True, exist_ok=True)

    for name, tree in trees.items():
        print(f"{name}: {tree} at {_describe(tree)}")
    print(f"benchmark: {trees['new']}/benchmarks/{args.bench}.py {' '.join(extra)}; logs in {logs}", flush=True)
    figures: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for round_number in range(1, args.rounds + 1):
        for name, tree in trees.items():
            log = logs / f"{round_number:02d}-{name}.log"
            load = os.getloadavg()[0]
            started = time.monotonic()
            found = _run(args.bench, tree, trees["new"], extra, log)
            wanted = {key: found[key] for key in FIGURES[args.bench] if key in found}
            figures[name].append(wanted)
            shown = " ".join(f"{key}={value:g}" for key, value in wanted.items())
            print(f"round {round_number} {name}: {shown} ({time.monotonic() - started:.0f} s, load before {load:.2f})",
                  flush=True)  # fmt: skip
    _summarise(args.bench, figures)


def _describe(tree: Path) -> str:
    """The tree's commit, and whether it has uncommitted changes."""
    commit = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    ).stdout.strip()
    changes = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{commit[:90] or 'no git commit'}{' (with uncommitted changes)' if changes else ''}"


def _run(bench: str, code: Path, scripts: Path, extra: list[str], log: Path) -> dict[str, float]:
    """One run of the benchmark against ``code``; every ``name=<number>`` it printed,
    the last of each name winning. Exits with the log's tail if the run fails."""
    command = [sys.executable, "-m", f"benchmarks.{bench}", "--code", str(code), *extra]
    with log.open("w") as output:
        result = subprocess.run(command, cwd=scripts, stdout=output, stderr=subprocess.STDOUT, check=False)
    text = log.read_text(errors="replace")
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}); end of {log}:\n{text[-3000:]}")
    return {key: float(value) for key, value in FIGURE.findall(text)}


def _summarise(bench: str, figures: dict[str, list[dict[str, float]]]) -> None:
    print("summary (median, range over the runs of each tree; new/old of the medians):")
    for key in FIGURES[bench]:
        values = {name: [run[key] for run in runs if key in run] for name, runs in figures.items()}
        if not values["old"] or not values["new"]:
            continue
        medians = {name: statistics.median(found) for name, found in values.items()}
        line = "  ".join(f"{name} {medians[name]:g} ({min(found):g}-{max(found):g})" for name, found in values.items())
        change = f"new/old {medians['new'] / medians['old']:.4f}" if medians["old"] else ""
        print(f"  {key}: {line}  {change}")


if __name__ == "__main__":
    main()
