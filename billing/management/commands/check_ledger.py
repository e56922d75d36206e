"""Check the ledger invariants of every account now.

    python manage.py check_ledger

Prints each violation in words and exits with status 1 when any is found (0 when
every account is consistent). Like the light worker's periodic check, it logs each
violation as an error and replaces the violations the admin shows. It repairs nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.invariants import check_ledger


class Command(BaseCommand):
    help = "Verify every account's balance, ledger lines and holds; exit 1 if any invariant is broken."

    def handle(self, *args: Any, **options: Any) -> None:
        violations = check_ledger()
        for violation in violations:
            self.stdout.write(f"{violation}")
        if violations:
            raise CommandError(f"{len(violations)} ledger invariant violations found", returncode=1)
        self.stdout.write("Every account's balance, ledger lines and holds agree.")
