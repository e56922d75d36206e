"""Stripe: card payments into the prepaid balance. The one package that imports ``stripe``.

- ``client``: the configured Stripe client (API version pinned, the local emulator's
  address when set).
- ``models``: ``CheckoutSession`` (one row per Checkout we open) and ``StripeEvent``
  (one row per verified webhook event); ``billing.models`` re-exports both.
- ``checkout``: opening a Checkout for a top-up or for a Timed session paid now.
- ``webhooks``: storing each verified event once and processing it once, one handler
  per event type: a paid Checkout is credited, a refund or dispute takes back what
  the payment bought.
- ``reconcile``: asking Stripe about our open Checkouts, and its periodic scheduling.
- ``views`` and ``urls``: the top-up and Checkout return pages and the webhook, under
  ``/billing/stripe/`` in the ``stripe`` URL namespace.

Training is never called by name: a paid Pay Now and a refund or dispute of one are
announced with ``billing.signals.pay_now_paid`` and ``pay_now_taken_back`` (training's
receivers are in ``training.payments``). This package's top imports nothing: Django
loads ``models`` while the apps load, before the rest may be imported.
"""
