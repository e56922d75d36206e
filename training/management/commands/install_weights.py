"""Install official Ultralytics pretrained weights into WEIGHTS_DIR (docs/weights.md).

    python manage.py install_weights                # every architecture the model form offers
    python manage.py install_weights yolo11n yolo26s
    python manage.py install_weights --source URL   # another release API address (a mirror)

Needs the machine online (or --source reachable); nothing is ever fetched at training time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training import catalogue
from training.weights import shipped_names
from training.weights.install import InstallError, install, read_release


class Command(BaseCommand):
    help = "Download official pretrained weights (checksum-verified, safely loaded) into WEIGHTS_DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "architectures", nargs="*", metavar="ARCH", help="e.g. yolo11n, yolo26s-seg (default: all offered)"
        )
        parser.add_argument(
            "--source",
            default=None,
            help="the GitHub release API address to read the assets and their sha256 digests from "
            "(default: the WEIGHTS_RELEASE_URL setting)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        requested: list[str] = options["architectures"] or [a.name for a in catalogue.catalogue()]
        known = set(shipped_names())
        unknown = [name for name in requested if name not in known]
        if unknown:
            raise CommandError(
                f"Unknown architecture: {', '.join(unknown)}. Choose from the names ultralytics ships, "
                f"e.g. {', '.join(sorted(known)[:6])} ..."
            )
        source: str = options["source"] or settings.WEIGHTS_RELEASE_URL
        weights_dir = Path(settings.WEIGHTS_DIR)
        try:
            assets = read_release(source)
        except InstallError as error:
            raise CommandError(str(error)) from error
        failures: list[str] = []
        for architecture in requested:
            try:
                path = install(architecture, assets, weights_dir)
            except InstallError as error:
                failures.append(str(error))
                self.stderr.write(f"{architecture}: {error}")
                continue
            self.stdout.write(f"{architecture}: installed {path}")
        if failures:
            raise CommandError(f"{len(failures)} of {len(requested)} not installed: {failures[0]}")
