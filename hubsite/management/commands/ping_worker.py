from __future__ import annotations

import secrets
import time
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hubsite.tasks import ping, ping_key


class Command(BaseCommand):
    help = "Send a ping through the broker and wait for a light worker to answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        token = secrets.token_hex(8)
        client = redis.Redis.from_url(settings.REDIS_URL)
        started = time.monotonic()
        ping.send(token)
        while time.monotonic() - started < timeout:
            if client.get(ping_key(token)) is not None:
                self.stdout.write(f"pong after {(time.monotonic() - started) * 1000:.0f} ms")
                return
            time.sleep(0.05)
        raise CommandError(f"No worker answered within {timeout:.0f} s.")
