from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.datasets.synthetic import TASKS, write_synthetic_dataset


class Command(BaseCommand):
    help = "Write a small synthetic dataset (shapes) of any task as an Ultralytics HUB zip."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out", type=Path, help="Where to write the zip, e.g. shapes.zip")
        parser.add_argument("--train", type=int, default=32, help="Training images (default 32)")
        parser.add_argument("--val", type=int, default=16, help="Validation images (default 16)")
        parser.add_argument("--size", type=int, default=128, help="Image side in pixels (default 128)")
        parser.add_argument("--classes", type=int, default=3, help="Number of classes (default 3)")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0)")
        parser.add_argument("--task", choices=TASKS, default="detect", help="The dataset's task (default detect)")

    def handle(
        self,
        *args: Any,
        out: Path,
        train: int,
        val: int,
        size: int,
        classes: int,
        seed: int,
        task: str,
        **options: Any,
    ) -> None:
        try:
            path = write_synthetic_dataset(
                out, train_images=train, val_images=val, image_size=size, classes=classes, seed=seed, task=task
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Wrote {path} ({task}: {train} train, {val} val images, {classes} classes, {size} px)")
