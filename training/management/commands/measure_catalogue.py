"""Measure the shipped architectures' parameters and GFLOPs for the model form.

    manage.py measure_catalogue

The web process reads the cached numbers and never builds a model itself; run this
once per ultralytics version (the demo setup and the deploy steps do)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from training.catalogue import cache_path


class Command(BaseCommand):
    help = "Measure every shipped architecture (parameters, GFLOPs) into the catalogue cache."

    def handle(self, *args: Any, **options: Any) -> None:
        from training.yolo.catalogue_facts import write_catalogue  # torch: only this command pays for it

        measured = write_catalogue()
        self.stdout.write(f"Measured {len(measured)} architectures into {cache_path()}")
