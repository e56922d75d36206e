from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from billing.invariants import maybe_schedule_ledger_check
        from billing.signals import create_account
        from billing.stripe.reconcile import maybe_schedule_reconcile
        from hubsite.jobs import register_periodic

        post_save.connect(create_account, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing_create_account")
        # Each checks every presence interval and enqueues its actor at most once per
        # its own interval across all workers (a Redis key decides).
        register_periodic(
            "billing.reconcile_stripe",
            maybe_schedule_reconcile,
            every=lambda: settings.WORKER_PRESENCE_INTERVAL_SECONDS,
        )
        register_periodic(
            "billing.ledger_check",
            maybe_schedule_ledger_check,
            every=lambda: settings.WORKER_PRESENCE_INTERVAL_SECONDS,
        )
