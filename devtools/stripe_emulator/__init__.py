"""A local Stripe for the demo and the tests: localstripe plus Checkout Sessions.

localstripe (GPL, a development-time dependency) emulates Customers,
PaymentIntents, Charges, Refunds and signed webhooks, but not Checkout. The
``checkout`` module adds Checkout Sessions and a stand-in for Stripe's hosted
payment page; ``subscriptions`` adds Prices, Subscriptions, Invoices, a
customer portal stand-in and a test clock; ``receipts`` the charges' receipt
pages. ``python -m devtools.stripe_emulator`` starts them all on 127.0.0.1 with
the emulator's state kept in a directory of our choosing. Nothing here is imported
by the site itself: the site talks to it over HTTP exactly as it talks to Stripe.
"""
