"""Measure the shipped architectures' parameters and GFLOPs for the model form.

    manage.py measure_catalogue

The web process reads the cached numbers and never builds a model itself; run this
once per ultralytics version (the demo setup and the deploy steps do)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.management.base import BaseCommand

from training.catalogue import cache_path, shipped_architectures, write_cache
from training.yolo.catalogue_facts import measure


class Command(BaseCommand):
    help = "Measure every shipped architecture (parameters, GFLOPs) into the catalogue cache."

    def handle(self, *args: Any, **options: Any) -> None:
        measured = []
        for architecture in shipped_architectures():
            params, gflops = measure(architecture.yaml)
            measured.append(dataclasses.replace(architecture, params=params, gflops=gflops))
        write_cache(measured)
        self.stdout.write(f"Model catalogue: {len(measured)} architectures measured into {cache_path()}")
