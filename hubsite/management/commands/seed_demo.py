from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from hubsite.models import User

DEMO_EMAIL = "demo@hubsite.local"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - the demo account is public by design


class Command(BaseCommand):
    help = "Create the demo user (idempotent) and print how to log in."

    def handle(self, *args: Any, **options: Any) -> None:
        user, created = User.objects.get_or_create(email=DEMO_EMAIL)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        self.stdout.write(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
