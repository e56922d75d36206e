"""Plans: what each user may do (``standing``), the Plans page (``views``), staff grants (``grants``).

Subscriptions themselves change only in ``billing.stripe.subscriptions``."""
