"""The billing app's actors, gathered here for django-dramatiq's autodiscovery."""

from billing.invariants import check_ledger_invariants
from billing.stripe.reconcile import reconcile_stripe_checkouts

__all__ = ["check_ledger_invariants", "reconcile_stripe_checkouts"]
