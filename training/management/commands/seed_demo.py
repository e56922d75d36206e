from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from billing import services
from billing.models import Plan, PlanGrant
from hubsite.models import User
from training.datasets import create_demo_datasets

DEMO_EMAIL = "demo@hubsite.local"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - the demo account is public by design
DEMO_PLAN_SLUG = "pro"
DEMO_GRANT_REASON = "demo account"


class Command(BaseCommand):
    help = "Create the demo user (idempotent) and print how to log in."

    def handle(self, *args: Any, **options: Any) -> None:
        user, created = User.objects.get_or_create(email=DEMO_EMAIL)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        self._demo_credit(user)
        self._demo_plan(user)
        self._demo_datasets(user)
        self._measure_catalogue()
        self.stdout.write(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")

    def _demo_credit(self, user: User) -> None:
        """US$20.00 (BILLING_DEMO_CREDIT_MICROS) once, as an adjustment line, so the demo can train."""
        amount: int = settings.BILLING_DEMO_CREDIT_MICROS
        if amount > 0:
            account = services.account_for(user)
            services.adjust(account.pk, amount, staff_user=None, reason="demo credit", reference="demo-credit")

    def _demo_plan(self, user: User) -> None:
        """Pro by a grant (no staff user: this command), so the demo trains in the cloud as
        before plans existed; new sign-ups are on the default plan (Free). Granted once: a
        grant staff changed afterwards is left alone."""
        plan = Plan.objects.filter(slug=DEMO_PLAN_SLUG).first()
        account = services.account_for(user)
        if plan is None or PlanGrant.objects.filter(account=account, reason=DEMO_GRANT_REASON).exists():
            return
        PlanGrant.objects.create(account=account, plan=plan, reason=DEMO_GRANT_REASON, granted_by=None)
        self.stdout.write(f"Demo plan: {plan.name} (granted)")

    def _demo_datasets(self, user: User) -> None:
        """Ready synthetic shapes datasets (training/datasets/synthetic.py), made and validated once."""
        for dataset in create_demo_datasets(user):
            self.stdout.write(f"Demo dataset: {dataset.name} ({dataset.get_task_display()}, {dataset.status})")

    def _measure_catalogue(self) -> None:
        """The model form's parameter and GFLOPs figures (training/yolo/catalogue_facts.py)."""
        call_command("measure_catalogue", stdout=self.stdout)
