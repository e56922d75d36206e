"""Apply paid Checkouts whose webhook never arrived, and expire stale ones.

    python manage.py reconcile_stripe

Safe to run any number of times (and beside the webhook): every credit goes through
the same locked, once-only path. The light worker runs it periodically too
(``billing.stripe.reconcile.maybe_schedule_reconcile``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.stripe.reconcile import reconcile


class Command(BaseCommand):
    help = "Ask Stripe about our open Checkout Sessions: credit the paid ones, expire the stale ones."

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile()
        self.stdout.write(
            f"{report.checked} open checkouts checked, {report.applied} credited, {report.expired} expired"
        )
        for problem in report.problems:
            self.stderr.write(f"problem: {problem}")
