"""Plan subscriptions in Stripe: the customer, the plan's Price, Checkout in subscription
mode, the customer portal, and our ``Subscription`` and ``Invoice`` rows (docs/plans.md).

The rules are the top-ups' (``checkout``, ``webhooks``):

- Our ``CheckoutSession`` row (purpose SUBSCRIPTION) is committed before Stripe's
  session exists, and nothing here calls Stripe inside a database transaction.
- A subscription's state comes only from verified webhook events (stored once,
  processed once by ``webhooks.receive_event``) and from reconciliation asking Stripe.
  Events apply in Stripe's order: one whose ``created`` is older than the last applied
  changes nothing, and a canceled subscription stays canceled.
- The account comes from the subscription's ``metadata.hubsite_account`` and must be
  the account holding the subscription's Stripe customer; otherwise nothing changes.
- No ledger line: a plan's fee is paid to Stripe and never reaches the balance.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import Account, CheckoutSession, Invoice, Plan, StripeEvent, Subscription
from billing.stripe.checkout import CheckoutUnavailable
from billing.stripe.client import stripe_client
from billing.stripe.webhooks import Outcome, handles, handles_completed_mode, set_lock_timeout

if TYPE_CHECKING:
    from hubsite.models import User

logger = logging.getLogger(__name__)

UNAVAILABLE = "Payments are unavailable right now, so nothing was charged. Please try again in a few minutes."
# States Stripe never leaves: a later event (delivered late) cannot bring them back.
FINAL_STATUSES = frozenset({Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED})


class UpgradeInProgress(Exception):
    """Another Upgrade of this account is being opened right now. The message is for people."""


class PortalUnavailable(Exception):
    """The customer portal could not be opened. The message is for people."""


# -- the customer and the plan's price (created once each) --------------------------


def ensure_customer(account: Account) -> str:
    """The account's Stripe customer id, created on first use and stored.

    The idempotency key is the account's id and creation time (a database rebuilt
    from scratch never reuses an old account's key), so two first uses at once create
    one customer; the conditional update keeps whichever id was stored first."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer = stripe_client().v1.customers.create(
        params={"email": account.user.email, "metadata": {"hubsite_account": str(account.pk)}},
        options={"idempotency_key": f"hubsite-customer-{account.pk}-{int(account.created_at.timestamp())}"},
    )
    Account.objects.filter(pk=account.pk, stripe_customer_id="").update(stripe_customer_id=customer.id)
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


def ensure_price(plan: Plan) -> str:
    """The plan's recurring monthly Stripe Price, created with its Product on first use.

    Staff set ``stripe_price_id`` for real Stripe; the keys include the price, so a
    plan whose price changed (and whose id staff cleared) gets a new Price."""
    if plan.stripe_price_id:
        return plan.stripe_price_id
    client = stripe_client()
    key = f"hubsite-plan-{plan.pk}-{int(plan.created_at.timestamp())}-{plan.monthly_price_cents}-{plan.currency}"
    product = client.v1.products.create(
        params={"name": f"hubsite {plan.name}", "metadata": {"hubsite_plan": plan.slug}},
        options={"idempotency_key": f"{key}-product"},
    )
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": plan.monthly_price_cents,
            "currency": plan.currency,
            "recurring": {"interval": "month"},
            "metadata": {"hubsite_plan": plan.slug},
        },
        options={"idempotency_key": f"{key}-price"},
    )
    Plan.objects.filter(pk=plan.pk, stripe_price_id="").update(stripe_price_id=price.id)
    plan.refresh_from_db(fields=["stripe_price_id"])
    return plan.stripe_price_id


# -- upgrading: Checkout in subscription mode -----------------------------------------


def create_subscription_checkout(user: User, plan: Plan) -> CheckoutSession:
    """Open a Stripe Checkout subscribing ``user`` to ``plan`` (the caller has checked
    that the plan may be bought), or return the one already open for it, so a double
    click never opens two subscriptions. Raises CheckoutUnavailable when Stripe fails,
    UpgradeInProgress while another request is opening one."""
    if not plan.is_paid:
        raise ValueError("only a paid plan is bought through Checkout")
    now = timezone.now()
    with transaction.atomic():  # the account lock makes "find an open one, else add ours" one step
        account = billing.lock_account(user.pk)
        opened = (
            CheckoutSession.objects.filter(
                account=account, purpose=CheckoutSession.Purpose.SUBSCRIPTION, status=CheckoutSession.Status.OPEN
            )
            .exclude(expires_at__lte=now + timedelta(minutes=5))
            .first()
        )
        if opened is not None and opened.url and opened.plan_id == plan.pk:
            return opened
        if opened is not None and not opened.stripe_session_id and opened.created_at > now - timedelta(minutes=1):
            raise UpgradeInProgress("Your upgrade is being opened already: wait a moment and try again.")
        record = CheckoutSession.objects.create(
            account=account,
            purpose=CheckoutSession.Purpose.SUBSCRIPTION,
            plan=plan,
            amount_cents=plan.monthly_price_cents,
            currency=plan.currency,
        )
    expires_at = timezone.now() + timedelta(minutes=settings.STRIPE_CHECKOUT_EXPIRY_MINUTES)
    metadata = {"hubsite_checkout": str(record.pk), "hubsite_account": str(account.pk), "hubsite_plan": plan.slug}
    try:
        customer = ensure_customer(account)
        price = ensure_price(plan)
        subscription_data: dict[str, Any] = {"metadata": metadata}
        if plan.trial_days:
            subscription_data["trial_period_days"] = plan.trial_days
        session = stripe_client().v1.checkout.sessions.create(
            params={  # type: ignore[arg-type]
                "mode": "subscription",
                "customer": customer,
                "line_items": [{"price": price, "quantity": 1}],
                "subscription_data": subscription_data,
                "metadata": metadata,
                "client_reference_id": str(record.pk),
                "success_url": settings.SITE_URL
                + reverse("plans:upgrade_success", args=[record.pk])
                + "?session_id={CHECKOUT_SESSION_ID}",
                "cancel_url": settings.SITE_URL + reverse("plans:index"),
                "expires_at": int(expires_at.timestamp()),
            },
            options={"idempotency_key": f"hubsite-checkout-{record.uid}"},
        )
    except stripe.StripeError as error:
        logger.warning("Stripe refused to open subscription checkout %s: %s", record.pk, error)
        CheckoutSession.objects.filter(pk=record.pk).update(status=CheckoutSession.Status.FAILED, note=str(error)[:500])
        raise CheckoutUnavailable(UNAVAILABLE) from error
    record.stripe_session_id = session.id
    record.url = session.url or ""
    record.expires_at = expires_at
    record.save(update_fields=["stripe_session_id", "url", "expires_at"])
    return record


def portal_url(account: Account) -> str:
    """A Stripe customer portal session for the account, returning to the Plans page."""
    if not account.stripe_customer_id:
        raise PortalUnavailable("You have no subscription to manage yet.")
    try:
        session = stripe_client().v1.billing_portal.sessions.create(
            params={"customer": account.stripe_customer_id, "return_url": settings.SITE_URL + reverse("plans:index")}
        )
    except stripe.StripeError as error:
        logger.warning("Stripe refused a portal session for account %s: %s", account.pk, error)
        raise PortalUnavailable(
            "Stripe's subscription page is unavailable right now. Please try again in a few minutes."
        ) from error
    return str(session.url)


# -- webhook events ---------------------------------------------------------------------


def _id_of(value: object) -> str:
    """Stripe's id of a field that is an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


LATEST_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z: any later "time" is not one
INVOICE_STATUSES = frozenset({"draft", "open", "paid", "uncollectible", "void"})
MAX_INVOICE_CENTS = 2_000_000_000  # what the Invoice columns hold; Stripe's own limit is far below


def _time(value: object) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= LATEST_TIMESTAMP:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _account_for(obj: dict[str, Any]) -> tuple[Account | None, str]:
    """The account a subscription (or its invoice) belongs to, and why not when None.

    The Stripe customer must be an account's; metadata naming another account is a
    mismatch and nothing is applied."""
    customer = _id_of(obj.get("customer"))
    by_customer = Account.objects.filter(stripe_customer_id=customer).first() if customer else None
    named = str(_metadata(obj).get("hubsite_account") or "")
    if by_customer is None:
        return None, f"customer {customer!r} is not one of our accounts'"
    if named and named != str(by_customer.pk):
        return None, f"metadata names account {named!r}, but customer {customer} is account {by_customer.pk}'s"
    return by_customer, ""


def _plan_for(subscription: dict[str, Any]) -> Plan | None:
    """Our plan for the subscription's first item's price, or the one its metadata names."""
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    price_id = ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        price_id = _id_of(data[0].get("price"))
    if price_id:
        plan = Plan.objects.filter(stripe_price_id=price_id).first()
        if plan is not None:
            return plan
    slug = _metadata(subscription).get("hubsite_plan")
    return Plan.objects.filter(slug=slug).first() if isinstance(slug, str) and slug else None


def _first_item(subscription: dict[str, Any]) -> dict[str, Any]:
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}


@handles("customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted")
def apply_subscription(subscription: dict[str, Any], created: int) -> Outcome:
    """Upsert our Subscription from Stripe's object, if ``created`` is not older than the
    state we have. Runs inside the caller's transaction; locks the account, then the row."""
    stripe_id = _id_of(subscription)
    status = str(subscription.get("status") or "")
    if not stripe_id.startswith("sub_") or status not in Subscription.Status.values:
        return Outcome(StripeEvent.Status.IGNORED, f"not a subscription we understand: {stripe_id!r} ({status!r})")
    account, problem = _account_for(subscription)
    if account is None:
        return Outcome(StripeEvent.Status.IGNORED, f"subscription {stripe_id}: {problem}; nothing changed")
    plan = _plan_for(subscription)
    if plan is None:
        return Outcome(StripeEvent.Status.IGNORED, f"subscription {stripe_id}: its price is none of our plans'")
    billing.lock_account(account.user_id)  # one account's subscription events, one at a time
    row = Subscription.objects.select_for_update().filter(stripe_subscription_id=stripe_id).first()
    if row is not None and row.account_id != account.pk:
        return Outcome(StripeEvent.Status.IGNORED, f"subscription {stripe_id} is account {row.account_id}'s")
    if row is not None and created < row.last_event_created:
        return Outcome(StripeEvent.Status.PROCESSED, f"subscription {stripe_id}: older than the state we have")
    if row is not None and row.status in FINAL_STATUSES and status != row.status:
        return Outcome(StripeEvent.Status.PROCESSED, f"subscription {stripe_id} is {row.status}, which is final")
    if row is None:
        row = Subscription(account=account, stripe_subscription_id=stripe_id)
    item = _first_item(subscription)
    row.plan = plan
    row.stripe_customer_id = _id_of(subscription.get("customer"))
    row.status = status
    row.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
    row.current_period_end = _time(item.get("current_period_end")) or _time(subscription.get("current_period_end"))
    row.trial_end = _time(subscription.get("trial_end"))
    row.ended_at = _time(subscription.get("ended_at"))
    if status == Subscription.Status.PAST_DUE:
        row.past_due_since = row.past_due_since or _time(created) or timezone.now()
    else:
        row.past_due_since = None
    row.last_event_created = max(row.last_event_created, created)
    row.save()
    return Outcome(StripeEvent.Status.PROCESSED, f"subscription {stripe_id} of account {account.pk}: {status}")


@handles("invoice.paid", "invoice.payment_failed")
def apply_invoice(invoice: dict[str, Any], created: int) -> Outcome:
    """Upsert our Invoice (the Billing page's receipt of a plan payment). A paid invoice
    stays paid when an older event arrives late."""
    stripe_id = _id_of(invoice)
    if not stripe_id.startswith("in_"):
        return Outcome(StripeEvent.Status.IGNORED, f"not an invoice we understand: {stripe_id!r}")
    account, problem = _account_for(invoice)
    if account is None:
        return Outcome(StripeEvent.Status.IGNORED, f"invoice {stripe_id}: {problem}; nothing changed")
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    subscription_id = _id_of(details.get("subscription")) if isinstance(details, dict) else ""
    subscription_id = subscription_id or _id_of(invoice.get("subscription"))
    subscription = Subscription.objects.filter(stripe_subscription_id=subscription_id).first()
    if subscription is not None and subscription.account_id != account.pk:
        return Outcome(StripeEvent.Status.IGNORED, f"invoice {stripe_id}: its subscription is another account's")
    row = Invoice.objects.select_for_update().filter(stripe_invoice_id=stripe_id).first()
    if row is not None and row.account_id != account.pk:
        return Outcome(StripeEvent.Status.IGNORED, f"invoice {stripe_id} is account {row.account_id}'s")
    status = invoice.get("status")
    amount_due, amount_paid = _cents(invoice.get("amount_due")), _cents(invoice.get("amount_paid"))
    if status not in INVOICE_STATUSES or amount_due is None or amount_paid is None:
        return Outcome(StripeEvent.Status.IGNORED, f"invoice {stripe_id}: no valid status and amounts; nothing changed")
    if row is not None and row.status == "paid" and status != "paid":
        return Outcome(StripeEvent.Status.PROCESSED, f"invoice {stripe_id} is already paid")
    if row is None:
        row = Invoice(account=account, stripe_invoice_id=stripe_id)
    transitions = invoice.get("status_transitions")
    row.subscription = subscription
    row.status = status
    row.amount_due_cents, row.amount_paid_cents = amount_due, amount_paid
    row.currency = str(invoice.get("currency") or "usd").lower()[:3]
    url = str(invoice.get("hosted_invoice_url") or "")
    row.hosted_invoice_url = url[:2000] if url.startswith(("https://", "http://")) else ""
    row.period_start = _time(invoice.get("period_start"))
    row.period_end = _time(invoice.get("period_end"))
    row.stripe_created = _time(invoice.get("created")) or _time(created) or timezone.now()
    row.paid_at = _time(transitions.get("paid_at")) if isinstance(transitions, dict) else None
    row.save()
    return Outcome(StripeEvent.Status.PROCESSED, f"invoice {stripe_id} of account {account.pk}: {status}")


def _cents(value: object) -> int | None:
    """An amount in cents as Stripe sends it (missing: 0), or None when it is not one."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INVOICE_CENTS:
        return None
    return value


@handles_completed_mode("subscription")
def apply_subscription_checkout(session: dict[str, Any], created: int) -> Outcome:
    """A subscription Checkout completed: our row is complete and names the subscription.
    The subscription itself arrives with its own events (or reconciliation)."""
    session_id = _id_of(session)
    record = (
        CheckoutSession.objects.select_for_update().filter(stripe_session_id=session_id).first() if session_id else None
    )
    if record is None:
        return Outcome(StripeEvent.Status.IGNORED, f"unknown Checkout Session {session_id!r}")
    if record.purpose != CheckoutSession.Purpose.SUBSCRIPTION:
        return Outcome(StripeEvent.Status.IGNORED, f"checkout {record.pk} is not a subscription's")
    metadata = _metadata(session)
    if metadata.get("hubsite_checkout") != str(record.pk) or metadata.get("hubsite_account") != str(record.account_id):
        return Outcome(StripeEvent.Status.IGNORED, f"checkout {record.pk}: its metadata names another checkout")
    if _id_of(session.get("customer")) != record.account.stripe_customer_id:
        return Outcome(StripeEvent.Status.IGNORED, f"checkout {record.pk}: the customer is not the account's")
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return Outcome(
            StripeEvent.Status.IGNORED, f"checkout {record.pk} is not paid ({session.get('payment_status')})"
        )
    if record.status == CheckoutSession.Status.COMPLETE:
        return Outcome(StripeEvent.Status.PROCESSED, f"checkout {record.pk} was already complete")
    record.status = CheckoutSession.Status.COMPLETE
    record.completed_at = timezone.now()
    record.stripe_subscription_id = _id_of(session.get("subscription"))
    record.url = ""
    record.save(update_fields=["status", "completed_at", "stripe_subscription_id", "url"])
    return Outcome(StripeEvent.Status.PROCESSED, f"checkout {record.pk} subscribed ({record.stripe_subscription_id})")


# -- reconciliation ---------------------------------------------------------------------


def refresh_subscription(stripe_subscription_id: str) -> Outcome:
    """Ask Stripe for the subscription and apply it as the newest state there is."""
    fetched = stripe_client().v1.subscriptions.retrieve(stripe_subscription_id)
    with transaction.atomic():
        set_lock_timeout()
        return apply_subscription(fetched.to_dict(), int(timezone.now().timestamp()))


def reconcile_subscriptions() -> tuple[int, list[str]]:
    """Refresh every subscription of ours that has not ended; (how many, problems)."""
    checked, problems = 0, []
    live = Subscription.objects.exclude(status__in=FINAL_STATUSES).filter(ended_at__isnull=True)
    for stripe_id in live.values_list("stripe_subscription_id", flat=True):
        checked += 1
        try:
            outcome = refresh_subscription(stripe_id)
        except stripe.StripeError as error:
            problems.append(f"subscription {stripe_id}: {error}")
            continue
        if outcome.status != StripeEvent.Status.PROCESSED:
            problems.append(outcome.detail)
    return checked, problems


def reconcile_completed_checkout(session: dict[str, Any]) -> Outcome:
    """A subscription Checkout Stripe says is complete: mark ours, then fetch its subscription."""
    with transaction.atomic():
        set_lock_timeout()
        outcome = apply_subscription_checkout(session, 0)
    subscription_id = _id_of(session.get("subscription"))
    if outcome.status == StripeEvent.Status.PROCESSED and subscription_id:
        return refresh_subscription(subscription_id)
    return outcome
