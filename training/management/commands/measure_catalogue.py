"""Measure the shipped architectures' parameters and GFLOPs for the model form.

    manage.py measure_catalogue [--task segment ...] [--again]

The web process reads the cached numbers and never builds a model itself; run this
once per ultralytics version (the demo setup and the deploy steps do). It measures
only the architectures the cache lacks (all 75 take about a minute on two cores) and
saves after each task, so an interrupted run keeps what it measured; until an
architecture is measured the form lists it without numbers."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from training.catalogue import ARCHITECTURE_TASKS, Architecture, cache_path, catalogue, write_cache
from training.yolo.catalogue_facts import measure


class Command(BaseCommand):
    help = "Measure the shipped architectures (parameters, GFLOPs) the catalogue cache lacks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--task",
            action="append",
            choices=sorted(ARCHITECTURE_TASKS),
            help="Only this task's architectures (repeatable; default: every task).",
        )
        parser.add_argument("--again", action="store_true", help="Measure again what the cache already holds.")

    def handle(self, *args: Any, **options: Any) -> None:
        tasks: list[str] = options["task"] or list(ARCHITECTURE_TASKS)
        entries = {entry.name: entry for entry in catalogue()}
        started = time.monotonic()
        count = 0
        for task in tasks:
            wanted = [e for e in entries.values() if e.task == task and (options["again"] or not e.measured)]
            for architecture in wanted:
                entries[architecture.name] = measured(architecture)
            if wanted:
                write_cache(list(entries.values()))
            count += len(wanted)
        self.stdout.write(
            f"Model catalogue: {count} architectures measured in {time.monotonic() - started:.0f} s; "
            f"{sum(e.measured for e in entries.values())} of {len(entries)} in {cache_path()}"
        )


def measured(architecture: Architecture) -> Architecture:
    params, gflops = measure(architecture.yaml, architecture.task, architecture.measure_imgsz)
    return dataclasses.replace(architecture, params=params, gflops=gflops)
