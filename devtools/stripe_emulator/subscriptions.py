"""Prices, subscriptions, invoices and a stand-in customer portal for localstripe.

localstripe's own Subscription, Invoice and Plan follow Stripe's 2017 API; the site
speaks the current one. This module answers those paths itself: ``middleware`` (put
after localstripe's, so its key check still runs first) dispatches them to the
handlers below before localstripe's routes can match. Customers and Products stay
localstripe's (``POST /v1/customers``, ``POST /v1/products`` with ``name`` and
``metadata``, ``GET /v1/products/{id}``).

The API, in the shape Stripe's current version has it:

- ``POST /v1/prices`` (``product``, ``unit_amount``, ``currency``,
  ``recurring[interval]=month``, ``nickname``, ``metadata``; honours
  ``Idempotency-Key``), ``GET /v1/prices/{id}``, ``GET /v1/prices`` (``product``,
  ``active``, ``limit``, ``starting_after``).
- ``POST /v1/checkout/sessions`` with ``mode=subscription``: one line item,
  ``line_items[0][price]`` (a monthly price), quantity 1; ``customer`` (an existing
  ``cus_``) or ``customer_email``; ``subscription_data[trial_period_days]`` and
  ``subscription_data[metadata][...]``; ``metadata``, ``client_reference_id``,
  ``success_url``, ``cancel_url``, ``expires_at``. ``amount_total`` is the price
  (0 with a trial). Payment mode stays in ``checkout``.
- Paying such a session on the stand-in page (``/_config/checkout/pay/{id}``) with a
  test card that succeeds: creates the customer when there was none, a Subscription
  (``trialing`` with a trial, else ``active``; a period is 30 days, a trial
  ``trial_period_days``), its first Invoice (``paid``; charged through a real
  localstripe PaymentIntent and Charge when its amount is above 0) and sends, in
  this order, ``customer.subscription.created``, ``invoice.paid``,
  ``checkout.session.completed``. A declined card creates nothing.
- ``GET /v1/subscriptions/{id}``, ``GET /v1/subscriptions`` (``customer``, ``status``
  incl. ``all``, ``price``, ``limit``, ``starting_after``; newest first, canceled ones
  only with ``status=all|canceled``), ``POST /v1/subscriptions/{id}``
  (``cancel_at_period_end``, ``metadata``; sends ``customer.subscription.updated``
  when something changed), ``DELETE /v1/subscriptions/{id}`` (canceled now; sends
  ``customer.subscription.deleted``). ``GET /v1/subscription_items/{id}``.
  ``current_period_start``/``current_period_end`` are on the items, as in Stripe.
- ``GET /v1/invoices/{id}``, ``GET /v1/invoices`` (``subscription``, ``customer``,
  ``status``, ``limit``, ``starting_after``; newest first). An invoice's
  ``period_start``/``period_end`` are the period it pays for (Stripe's own invoice
  fields there hold the previous period; its line's ``period`` is this one), its
  ``hosted_invoice_url`` the page ``/_config/invoices/{id}``.
- ``POST /v1/billing_portal/sessions`` (``customer``, ``return_url``): the portal
  stand-in at ``/_config/portal/{id}``, no key needed (as Stripe's portal URL is the
  customer's capability). It lists the customer's subscriptions and invoices and
  offers "Cancel plan" (at period end), "Keep plan" (undo) and, for a ``past_due``
  subscription, "Pay overdue invoice" (a card form: 4242… pays the open invoice ->
  ``invoice.paid`` then ``customer.subscription.updated`` with status ``active``).
- The test clock, ``POST /_config/subscriptions/{id}/advance`` (``outcome=paid``, the
  default, or ``failed``): the current period ends now.

  * ``cancel_at_period_end``: status ``canceled``, ``ended_at`` ->
    ``customer.subscription.deleted``.
  * ``trialing``/``active``: a new 30-day period and its invoice
    (``subscription_cycle``); ``paid`` charges the saved card -> ``invoice.paid``,
    ``customer.subscription.updated`` (``active``); ``failed`` leaves the invoice
    ``open`` -> ``invoice.payment_failed``, ``customer.subscription.updated``
    (``past_due``; the new period has begun, as in Stripe).
  * ``past_due``: ``paid`` is a retry that pays the open invoice (same events as the
    portal's payment, the period is unchanged); ``failed`` is the last retry failing:
    canceled now -> ``customer.subscription.deleted`` (Stripe's default "cancel the
    subscription" after all retries; the invoice stays ``open``).
  * ``canceled``: refused (400).

  It answers ``{"events": [ids in the order sent], "subscription": {...}}``.

Events of one action are delivered one after another, in the order above, with the
API version of the checkout that created the subscription, and carry
``data.previous_attributes`` for updates. Everything lives in localstripe's store and
so survives a restart of the emulator.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

from devtools.stripe_emulator import checkout, receipts

DAY = 24 * 60 * 60
PERIOD_SECONDS = 30 * DAY
MAX_TRIAL_DAYS = 730
PORTAL_PREFIX = "/_config/portal/"
INVOICE_PAGE_PREFIX = "/_config/invoices/"
LIVE_STATUSES = ("trialing", "active", "past_due")
ALL_STATUSES = ("trialing", "active", "past_due", "canceled", "unpaid", "incomplete", "incomplete_expired")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _missing(kind: str, object_id: str) -> UserError:
    return UserError(404, f"No such {kind}: '{object_id}'", {"code": "resource_missing"})


def _unknown(params: dict[str, Any]) -> None:
    if params:
        raise UserError(400, "Received unknown parameter: " + ", ".join(sorted(params)))


def _metadata(value: Any, param: str) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UserError(400, f"{param} must be a hash of strings.", {"param": param})
    return dict(value)


def _lookup(cls: type, kind: str, object_id: Any) -> Any:
    obj = resources.store.get(f"{kind}:{object_id}") if isinstance(object_id, str) else None
    if not isinstance(obj, cls):
        raise _missing(kind, str(object_id))
    return obj


def _customer(customer_id: Any) -> Any:
    obj = resources.store.get(f"customer:{customer_id}") if isinstance(customer_id, str) else None
    if obj is None:
        raise UserError(404, f"No such customer: '{customer_id}'", {"code": "resource_missing", "param": "customer"})
    return obj


# -- objects ------------------------------------------------------------------


class Price(resources.StripeObject):  # type: ignore[misc]
    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        *,
        product: Any = None,
        unit_amount: Any = None,
        currency: Any = None,
        recurring: Any = None,
        nickname: Any = None,
        metadata: Any = None,
        active: Any = True,
        **unexpected: Any,
    ) -> None:
        _unknown(unexpected)
        if not isinstance(product, str) or resources.store.get(f"product:{product}") is None:
            raise UserError(404, f"No such product: '{product}'", {"code": "resource_missing", "param": "product"})
        amount = resources.try_convert_to_int(unit_amount)
        if not isinstance(amount, int) or amount < 0:
            raise UserError(
                400, "unit_amount must be a whole number of minor units, 0 or more.", {"param": "unit_amount"}
            )
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise UserError(400, "currency must be a three-letter ISO code.", {"param": "currency"})
        if recurring is not None:
            if not isinstance(recurring, dict) or recurring.get("interval") != "month":
                raise UserError(400, "Only recurring[interval]=month is emulated.", {"param": "recurring"})
            count = resources.try_convert_to_int(recurring.get("interval_count", 1))
            if count != 1 or set(recurring) - {"interval", "interval_count"}:
                raise UserError(400, "Only recurring[interval_count]=1 is emulated.", {"param": "recurring"})
        if nickname is not None and not isinstance(nickname, str):
            raise UserError(400, "nickname must be a string.", {"param": "nickname"})
        is_active = resources.try_convert_to_bool(active)
        if not isinstance(is_active, bool):
            raise UserError(400, "active must be true or false.", {"param": "active"})
        tags = _metadata(metadata, "metadata")

        super().__init__()  # stores the object; no exception may follow

        self.product = product
        self.unit_amount = amount
        self.currency = currency.lower()
        self.recurring = (
            None
            if recurring is None
            else {"interval": "month", "interval_count": 1, "usage_type": "licensed", "aggregate_usage": None}
        )
        self.type = "one_time" if recurring is None else "recurring"
        self.nickname = nickname
        self.active = is_active
        self.metadata = tags
        self.billing_scheme = "per_unit"
        self.lookup_key = None

    def _product_name(self) -> str:
        product = resources.store.get(f"product:{self.product}")
        return str(getattr(product, "name", self.product))


class SubscriptionItem(resources.StripeObject):  # type: ignore[misc]
    object = "subscription_item"
    _id_prefix = "si_"

    def __init__(self, *, subscription: str, price: Price, start: int, end: int) -> None:
        super().__init__()
        self.subscription = subscription
        self.price = price
        self.quantity = 1
        self.metadata: dict[str, str] = {}
        self.current_period_start = start
        self.current_period_end = end


class Subscription(resources.StripeObject):  # type: ignore[misc]
    object = "subscription"
    _id_prefix = "sub_"

    def __init__(
        self,
        *,
        customer: str,
        price: Price,
        trial_days: int | None,
        metadata: dict[str, str],
        payment_method: str,
        api_version: str,
    ) -> None:
        super().__init__()
        now = int(time.time())
        end = now + (trial_days * DAY if trial_days else PERIOD_SECONDS)
        self.customer = customer
        self.status = "trialing" if trial_days else "active"
        self.cancel_at_period_end = False
        self.cancel_at: int | None = None
        self.canceled_at: int | None = None
        self.ended_at: int | None = None
        self.trial_start = now if trial_days else None
        self.trial_end = end if trial_days else None
        self.start_date = now
        self.billing_cycle_anchor = now
        self.collection_method = "charge_automatically"
        self.currency = price.currency
        self.default_payment_method = payment_method
        self.metadata = dict(metadata)
        self.latest_invoice: str | None = None
        item = SubscriptionItem(subscription=self.id, price=price, start=now, end=end)
        self.items = resources.List(f"/v1/subscription_items?subscription={self.id}")
        self.items._list = [item]
        self._api_version = api_version

    def _item(self) -> SubscriptionItem:
        item: SubscriptionItem = self.items._list[0]
        return item

    def _period_end(self) -> int:
        return self._item().current_period_end

    def _price(self) -> Price:
        return self._item().price


class Invoice(resources.StripeObject):  # type: ignore[misc]
    object = "invoice"
    _id_prefix = "in_"

    def __init__(self, *, subscription: Subscription, reason: str, amount: int, base: str) -> None:
        super().__init__()
        item = subscription._item()
        price = item.price
        self.customer = subscription.customer
        self.status = "open"
        self.amount_due = amount
        self.amount_paid = 0
        self.amount_remaining = amount
        self.subtotal = amount
        self.total = amount
        self.currency = price.currency
        self.attempt_count = 0
        self.attempted = False
        self.billing_reason = reason
        self.collection_method = "charge_automatically"
        self.period_start = item.current_period_start
        self.period_end = item.current_period_end
        self.hosted_invoice_url = f"{base}{INVOICE_PAGE_PREFIX}{self.id}"
        self.invoice_pdf = None
        self.number = f"EMU-{self.id[-8:].upper()}"
        self.status_transitions: dict[str, int | None] = {
            "finalized_at": self.created,
            "paid_at": None,
            "voided_at": None,
            "marked_uncollectible_at": None,
        }
        self.parent: dict[str, Any] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": subscription.id, "metadata": dict(subscription.metadata)},
        }
        self.lines: dict[str, Any] = {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": "il_" + resources.random_id(14),
                    "object": "line_item",
                    "amount": amount,
                    "currency": price.currency,
                    "description": f"1 x {price._product_name()}",
                    "quantity": 1,
                    "period": {"start": item.current_period_start, "end": item.current_period_end},
                    "pricing": {
                        "type": "price_details",
                        "price_details": {"price": price.id, "product": price.product},
                    },
                }
            ],
        }
        self.metadata: dict[str, str] = {}
        self.payment_intent: str | None = None
        self.charge: str | None = None
        subscription.latest_invoice = self.id

    def _mark_paid(self, intent: Any = None) -> None:
        self.status = "paid"
        self.amount_paid = self.amount_due
        self.amount_remaining = 0
        self.attempted = True
        self.attempt_count += 1
        self.status_transitions["paid_at"] = int(time.time())
        if intent is not None:
            self.payment_intent = intent.id
            self.charge = intent.latest_charge.id

    def _mark_failed(self) -> None:
        self.attempted = True
        self.attempt_count += 1


class PortalSession(resources.StripeObject):  # type: ignore[misc]
    object = "billing_portal.session"
    _id_prefix = "bps_"

    def __init__(self, *, customer: Any = None, return_url: Any = None, base: str, **unexpected: Any) -> None:
        _unknown(unexpected)
        _customer(customer)
        if not isinstance(return_url, str) or not return_url.startswith("http"):
            raise UserError(400, "return_url must be an absolute URL.", {"param": "return_url"})
        super().__init__()
        self.customer = customer
        self.return_url = return_url
        self.url = f"{base}{PORTAL_PREFIX}{self.id}"
        self.configuration = None
        self.locale = None


class SubscriptionCheckout(checkout.CheckoutSession):
    """A Checkout Session in ``mode=subscription``. It shares the payment-mode session's
    store key, page, listing and expiry; only its creation and payment differ."""

    def __init__(
        self,
        *,
        page_base: str,
        api_version: str,
        mode: Any = None,
        line_items: Any = None,
        metadata: Any = None,
        success_url: Any = None,
        cancel_url: Any = None,
        client_reference_id: Any = None,
        expires_at: Any = None,
        customer: Any = None,
        customer_email: Any = None,
        subscription_data: Any = None,
        payment_method_types: Any = None,
        **unexpected: Any,
    ) -> None:
        _unknown(unexpected)
        if not isinstance(success_url, str) or not success_url.startswith("http"):
            raise UserError(400, "success_url must be an absolute URL.", {"param": "success_url"})
        if cancel_url is not None and (not isinstance(cancel_url, str) or not cancel_url.startswith("http")):
            raise UserError(400, "cancel_url must be an absolute URL.", {"param": "cancel_url"})
        tags = _metadata(metadata, "metadata")
        price = _subscription_price(line_items)
        if customer is not None and customer_email is not None:
            raise UserError(400, "Pass customer or customer_email, not both.", {"param": "customer_email"})
        if customer is not None:
            _customer(customer)
        if customer_email is not None and not isinstance(customer_email, str):
            raise UserError(400, "customer_email must be a string.", {"param": "customer_email"})
        trial_days, sub_metadata = _subscription_data(subscription_data)
        expiry = _expiry(expires_at)

        resources.StripeObject.__init__(self)  # stores the object; no exception may follow

        amount = 0 if trial_days else price.unit_amount
        self.mode = "subscription"
        self.amount_subtotal = amount
        self.amount_total = amount
        self.currency = price.currency
        self.metadata = tags
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.client_reference_id = client_reference_id
        self.customer = customer
        self.customer_email = customer_email
        self.expires_at = expiry
        self.status = "open"
        self.payment_status = "unpaid"
        self.payment_intent = None
        self.subscription: str | None = None
        self.url: str | None = f"{page_base}{checkout.PAGE_PREFIX}{self.id}"
        self._api_version = api_version
        self._price = price.id
        self._trial_days = trial_days
        self._subscription_metadata = sub_metadata


def _subscription_price(line_items: Any) -> Price:
    if not isinstance(line_items, list) or len(line_items) != 1 or not isinstance(line_items[0], dict):
        raise UserError(400, "line_items must hold exactly one item in subscription mode.", {"param": "line_items"})
    item = dict(line_items[0])
    quantity = resources.try_convert_to_int(item.pop("quantity", 1))
    price_id = item.pop("price", None)
    if item:
        raise UserError(400, "line_items[0] takes only price and quantity here.", {"param": "line_items"})
    if quantity != 1:
        raise UserError(400, "Only quantity 1 is emulated.", {"param": "line_items[0][quantity]"})
    price: Price = _lookup(Price, "price", price_id)
    if price.recurring is None or not price.active:
        raise UserError(400, "The price must be an active recurring price.", {"param": "line_items[0][price]"})
    return price


def _subscription_data(data: Any) -> tuple[int | None, dict[str, str]]:
    if data is None:
        return None, {}
    if not isinstance(data, dict):
        raise UserError(400, "subscription_data must be a hash.", {"param": "subscription_data"})
    rest = dict(data)
    trial = rest.pop("trial_period_days", None)
    metadata = _metadata(rest.pop("metadata", None), "subscription_data[metadata]")
    if rest:
        raise UserError(400, "Received unknown parameter: subscription_data[" + ", ".join(sorted(rest)) + "]")
    if trial is None or trial == "":
        return None, metadata
    days = resources.try_convert_to_int(trial)
    if not isinstance(days, int) or not 1 <= days <= MAX_TRIAL_DAYS:
        raise UserError(
            400,
            f"trial_period_days must be between 1 and {MAX_TRIAL_DAYS}.",
            {"param": "subscription_data[trial_period_days]"},
        )
    return days, metadata


def _expiry(expires_at: Any) -> int:
    now = int(time.time())
    if expires_at is None:
        return now + checkout.DEFAULT_EXPIRY_SECONDS
    expiry = resources.try_convert_to_int(expires_at)
    if not isinstance(expiry, int) or not (
        now + checkout.MIN_EXPIRY_SECONDS - 5 <= expiry <= now + checkout.MAX_EXPIRY_SECONDS + 5
    ):
        raise UserError(400, "expires_at must be between 30 minutes and 24 hours from now.", {"param": "expires_at"})
    return expiry


# -- events -------------------------------------------------------------------


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's ``previous_attributes``: the old value of every field that changed."""
    return {key: value for key, value in before.items() if after.get(key) != value}


def _emit(api_version: str, *sends: tuple[str, Any, dict[str, Any] | None]) -> list[str]:
    """Create the events now (so ``/v1/events`` holds them in this order) and deliver
    them one after another in the background, each to every registered webhook.
    Each send is (type, object, previous_attributes or None)."""
    events = []
    for event_type, obj, previous in sends:
        event = resources.Event(event_type, obj)
        event.api_version = api_version
        if previous:
            event.data["previous_attributes"] = previous
        events.append(event)
    checkout._save()

    async def deliver_in_order() -> list[int]:
        statuses: list[int] = []
        for event in events:
            statuses.extend(await checkout.deliver(event))
        return statuses

    task = asyncio.ensure_future(deliver_in_order())
    checkout._background.add(task)
    task.add_done_callback(checkout._background.discard)
    return [event.id for event in events]


# -- money --------------------------------------------------------------------


def _charge(subscription: Subscription, invoice: Invoice, payment_method: str, base: str) -> None:
    """Collect an invoice's amount from a card through a real localstripe PaymentIntent
    and Charge (with a receipt), and mark it paid. An invoice of 0 needs no charge."""
    if invoice.amount_due == 0:
        invoice._mark_paid()
        return
    intent = resources.PaymentIntent(
        amount=invoice.amount_due,
        currency=invoice.currency,
        customer=subscription.customer,
        payment_method=payment_method,
        metadata=dict(subscription.metadata),
    )
    intent._confirm(on_failure_now=intent._report_failure)
    charge = intent.latest_charge
    receipts.give_receipt(charge, base)
    charge.invoice = invoice.id
    charge.description = f"Subscription {subscription.id}"
    invoice._mark_paid(intent)


def _open_invoice(subscription: Subscription) -> Invoice | None:
    invoice = resources.store.get(f"invoice:{subscription.latest_invoice}")
    return invoice if isinstance(invoice, Invoice) and invoice.status == "open" else None


def _pay_overdue(subscription: Subscription, payment_method: str, base: str) -> list[str]:
    invoice = _open_invoice(subscription)
    if subscription.status != "past_due" or invoice is None:
        raise UserError(400, f"Subscription {subscription.id} has no overdue invoice.")
    before = subscription._export()
    _charge(subscription, invoice, payment_method, base)
    subscription.status = "active"
    subscription.default_payment_method = payment_method
    return _emit(
        subscription._api_version,
        ("invoice.paid", invoice, None),
        ("customer.subscription.updated", subscription, _changes(before, subscription._export())),
    )


def _end_now(subscription: Subscription) -> list[str]:
    now = int(time.time())
    subscription.status = "canceled"
    subscription.ended_at = now
    subscription.canceled_at = subscription.canceled_at or now
    return _emit(subscription._api_version, ("customer.subscription.deleted", subscription, None))


def _set_cancel_at_period_end(subscription: Subscription, cancel: bool) -> list[str]:
    if subscription.status not in LIVE_STATUSES:
        raise UserError(400, f"Subscription {subscription.id} is {subscription.status}; it cannot be changed.")
    if subscription.cancel_at_period_end == cancel:
        return []
    before = subscription._export()
    subscription.cancel_at_period_end = cancel
    subscription.cancel_at = subscription._period_end() if cancel else None
    subscription.canceled_at = int(time.time()) if cancel else None
    return _emit(
        subscription._api_version,
        ("customer.subscription.updated", subscription, _changes(before, subscription._export())),
    )


def advance_period(subscription: Subscription, outcome: str, base: str) -> list[str]:
    """The test clock: the subscription's current period ends now (see the module docstring)."""
    if subscription.status == "canceled":
        raise UserError(400, f"Subscription {subscription.id} is canceled.")
    if subscription.status == "past_due":
        if outcome == "failed":
            return _end_now(subscription)
        return _pay_overdue(subscription, subscription.default_payment_method, base)
    if subscription.cancel_at_period_end:
        return _end_now(subscription)
    before = subscription._export()
    now = int(time.time())
    item = subscription._item()
    item.current_period_start = now
    item.current_period_end = now + PERIOD_SECONDS
    if subscription.cancel_at is not None:
        subscription.cancel_at = item.current_period_end
    invoice = Invoice(subscription=subscription, reason="subscription_cycle", amount=item.price.unit_amount, base=base)
    if outcome == "paid":
        _charge(subscription, invoice, subscription.default_payment_method, base)
        subscription.status = "active"
        first = "invoice.paid"
    else:
        invoice._mark_failed()
        subscription.status = "past_due"
        first = "invoice.payment_failed"
    return _emit(
        subscription._api_version,
        (first, invoice, None),
        ("customer.subscription.updated", subscription, _changes(before, subscription._export())),
    )


# -- the API ------------------------------------------------------------------


def _json(obj: Any, expand: Any = None) -> web.Response:
    response: web.Response = server.json_response(obj._export(expand=expand) if hasattr(obj, "_export") else obj)
    return response


def _newest_first(kind: str, keep: Callable[[Any], bool], query: dict[str, Any], url: str) -> web.Response:
    listing = resources.List(url, limit=query.pop("limit", None), starting_after=query.pop("starting_after", None))
    expand = query.pop("expand", None)
    _unknown(query)
    objects = [value for key, value in list(resources.store.items()) if key.startswith(kind + ":")]
    listing._list = [obj for obj in reversed(objects) if keep(obj)]
    return _json(listing, expand)


async def create_price(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key")
    if key and key in checkout._idempotent_creates:
        return _json(_lookup(Price, "price", checkout._idempotent_creates[key]))
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    price = Price(**data)
    if key:
        checkout._idempotent_creates[key] = price.id
    checkout._save()
    return _json(price, expand)


async def retrieve_price(request: web.Request, price_id: str) -> web.Response:
    query = server.unflatten_data(request.query)
    return _json(_lookup(Price, "price", price_id), query.get("expand"))


async def list_prices(request: web.Request) -> web.Response:
    query = server.unflatten_data(request.query)
    product = query.pop("product", None)
    active = resources.try_convert_to_bool(query.pop("active", None))
    return _newest_first(
        "price",
        lambda p: (product is None or p.product == product) and (active is None or p.active == active),
        query,
        "/v1/prices",
    )


async def create_checkout_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Subscription mode here; every other mode goes on to ``checkout``."""
    data = await server.get_post_data(request) or {}
    if data.get("mode") != "subscription":
        return await handler(request)
    key = request.headers.get("Idempotency-Key")
    if key and key in checkout._idempotent_creates:
        return _json(checkout._get(checkout._idempotent_creates[key]))
    expand = data.pop("expand", None)
    session = SubscriptionCheckout(
        page_base=checkout.page_base(request),
        api_version=request.headers.get("Stripe-Version", checkout.DEFAULT_API_VERSION),
        **data,
    )
    if key:
        checkout._idempotent_creates[key] = session.id
    checkout._save()
    return _json(session, expand)


def _plan_line(session: SubscriptionCheckout) -> str:
    price: Price = _lookup(Price, "price", session._price)
    monthly = receipts.money(price.unit_amount, price.currency)
    text = f"{price._product_name()}: {monthly} a month."
    if session._trial_days:
        text = (
            f"{price._product_name()}: {session._trial_days}-day free trial, then {monthly} a month."
            " Nothing is charged today."
        )
    return f"<p>{html.escape(text)}</p>"


async def show_checkout_page(request: web.Request, handler: Handler, session_id: str) -> web.StreamResponse:
    session = checkout._get(session_id)
    if not isinstance(session, SubscriptionCheckout):
        return await handler(request)
    return checkout._page(session, message=_plan_line(session))


async def pay_checkout(request: web.Request, handler: Handler, session_id: str) -> web.StreamResponse:
    """Pay a subscription-mode session on the stand-in page (payment mode goes on to ``checkout``)."""
    session = checkout._get(session_id)
    if not isinstance(session, SubscriptionCheckout):
        return await handler(request)
    if session.status != "open":
        return checkout._page(session, message=_plan_line(session), status=409)
    form = await request.post()
    method, problem, status = checkout.read_card(form)
    if method is None:
        card = "".join(str(form.get("card_number", "")).split())
        message = _plan_line(session) + checkout._error(problem)
        return checkout._page(session, message=message, card=card, status=status)
    base = checkout.page_base(request)
    customer_id = session.customer or resources.Customer(email=session.customer_email).id
    resources.PaymentMethod._api_attach(method.id, customer=customer_id)
    price: Price = _lookup(Price, "price", session._price)
    subscription = Subscription(
        customer=customer_id,
        price=price,
        trial_days=session._trial_days,
        metadata=session._subscription_metadata,
        payment_method=method.id,
        api_version=session._api_version,
    )
    invoice = Invoice(subscription=subscription, reason="subscription_create", amount=session.amount_total, base=base)
    _charge(subscription, invoice, method.id, base)
    session.status = "complete"
    session.payment_status = "no_payment_required" if session.amount_total == 0 else "paid"
    session.subscription = subscription.id
    session.customer = customer_id
    session.payment_intent = None
    session.url = None
    _emit(
        session._api_version,
        ("customer.subscription.created", subscription, None),
        ("invoice.paid", invoice, None),
        ("checkout.session.completed", session, None),
    )
    raise web.HTTPSeeOther(session.success_url.replace("{CHECKOUT_SESSION_ID}", session.id))


async def retrieve_subscription(request: web.Request, subscription_id: str) -> web.Response:
    query = server.unflatten_data(request.query)
    return _json(_lookup(Subscription, "subscription", subscription_id), query.get("expand"))


async def update_subscription(request: web.Request, subscription_id: str) -> web.Response:
    subscription: Subscription = _lookup(Subscription, "subscription", subscription_id)
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    cancel = resources.try_convert_to_bool(data.pop("cancel_at_period_end", None))
    metadata = data.pop("metadata", None)
    _unknown(data)
    if cancel is not None and not isinstance(cancel, bool):
        raise UserError(400, "cancel_at_period_end must be true or false.", {"param": "cancel_at_period_end"})
    tags = _metadata(metadata, "metadata")
    if cancel is not None:
        _set_cancel_at_period_end(subscription, cancel)
    if tags:
        before = subscription._export()
        subscription.metadata.update(tags)
        _emit(
            subscription._api_version,
            ("customer.subscription.updated", subscription, _changes(before, subscription._export())),
        )
    checkout._save()
    return _json(subscription, expand)


async def cancel_subscription(request: web.Request, subscription_id: str) -> web.Response:
    subscription: Subscription = _lookup(Subscription, "subscription", subscription_id)
    if subscription.status == "canceled":
        raise UserError(400, f"Subscription {subscription.id} is already canceled.")
    _end_now(subscription)
    return _json(subscription)


async def list_subscriptions(request: web.Request) -> web.Response:
    query = server.unflatten_data(request.query)
    customer = query.pop("customer", None)
    price = query.pop("price", None)
    status = query.pop("status", None)
    if status is not None and status not in (*ALL_STATUSES, "all"):
        raise UserError(400, "Invalid status.", {"param": "status"})

    def keep(sub: Any) -> bool:
        if not isinstance(sub, Subscription):
            return False
        if status is None and sub.status in ("canceled", "incomplete_expired"):
            return False
        if status not in (None, "all") and sub.status != status:
            return False
        return (customer is None or sub.customer == customer) and (price is None or sub._price().id == price)

    return _newest_first("subscription", keep, query, "/v1/subscriptions")


async def retrieve_subscription_item(request: web.Request, item_id: str) -> web.Response:
    return _json(_lookup(SubscriptionItem, "subscription_item", item_id))


async def retrieve_invoice(request: web.Request, invoice_id: str) -> web.Response:
    query = server.unflatten_data(request.query)
    return _json(_lookup(Invoice, "invoice", invoice_id), query.get("expand"))


async def list_invoices(request: web.Request) -> web.Response:
    query = server.unflatten_data(request.query)
    subscription = query.pop("subscription", None)
    customer = query.pop("customer", None)
    status = query.pop("status", None)

    def keep(invoice: Any) -> bool:
        return (
            isinstance(invoice, Invoice)
            and (customer is None or invoice.customer == customer)
            and (status is None or invoice.status == status)
            and (subscription is None or invoice.parent["subscription_details"]["subscription"] == subscription)
        )

    return _newest_first("invoice", keep, query, "/v1/invoices")


async def create_portal_session(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    portal = PortalSession(base=checkout.page_base(request), **data)
    checkout._save()
    return _json(portal)


async def advance(request: web.Request, subscription_id: str) -> web.Response:
    subscription: Subscription = _lookup(Subscription, "subscription", subscription_id)
    data = await server.get_post_data(request) or {}
    outcome = data.pop("outcome", "paid")
    _unknown(data)
    if outcome not in ("paid", "failed"):
        raise UserError(400, "outcome must be paid or failed.", {"param": "outcome"})
    events = advance_period(subscription, outcome, checkout.page_base(request))
    checkout._save()
    return _json({"events": events, "subscription": subscription._export()})


# -- the pages: hosted invoice, portal ----------------------------------------


async def show_invoice(request: web.Request) -> web.Response:
    invoice: Invoice = _lookup(Invoice, "invoice", request.match_info["id"])
    line = invoice.lines["data"][0]
    rows = [
        ("Invoice", invoice.number),
        ("Status", invoice.status),
        ("For", line["description"]),
        ("Period", f"{receipts.date(invoice.period_start)} to {receipts.date(invoice.period_end)}"),
        ("Amount due", receipts.money(invoice.amount_due, invoice.currency)),
        ("Amount paid", receipts.money(invoice.amount_paid, invoice.currency)),
        ("Paid on", receipts.date(invoice.status_transitions["paid_at"])),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    charge = resources.store.get(f"charge:{invoice.charge}") if invoice.charge else None
    receipt = (
        f'<p><a href="{html.escape(charge.receipt_url)}">Receipt</a></p>'
        if charge is not None and getattr(charge, "receipt_url", None)
        else ""
    )
    note = "<p>Pay it from the billing portal.</p>" if invoice.status == "open" else ""
    return receipts.page("Invoice", f"<table>{table}</table>{receipt}{note}")


_CARD_FORM = """<form method="post" action="{action}">
<label for="card-{sub}">Card number</label>
<input id="card-{sub}" name="card_number" inputmode="numeric" autocomplete="cc-number" value="{card}" required>
<label for="exp-{sub}">Expiry (MM/YY)</label><input id="exp-{sub}" name="expiry" value="12/34" required>
<label for="cvc-{sub}">CVC</label><input id="cvc-{sub}" name="cvc" inputmode="numeric" value="123" required>
<br><button type="submit">Pay overdue invoice</button>
</form>
<p class="note">Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.</p>"""


def _portal_page(portal: PortalSession, *, message: str = "", card: str = "", status: int = 200) -> web.Response:
    subscriptions = [
        v
        for k, v in reversed(list(resources.store.items()))
        if k.startswith("subscription:") and isinstance(v, Subscription) and v.customer == portal.customer
    ]
    sections = []
    for sub in subscriptions:
        price = sub._price()
        action = html.escape(f"{PORTAL_PREFIX}{portal.id}/subscriptions/{sub.id}/")
        rows = [
            ("Plan", price._product_name()),
            ("Price", f"{receipts.money(price.unit_amount, price.currency)} a month"),
            ("Status", sub.status),
            ("Current period ends", receipts.date(sub._period_end())),
            ("Cancels at period end", "yes" if sub.cancel_at_period_end else "no"),
        ]
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        forms = ""
        if sub.status in LIVE_STATUSES:
            if sub.cancel_at_period_end:
                forms += f'<form method="post" action="{action}keep"><button type="submit">Keep plan</button></form>'
            else:
                forms += (
                    f'<form method="post" action="{action}cancel"><button type="submit">Cancel plan</button></form>'
                )
        if sub.status == "past_due" and _open_invoice(sub) is not None:
            forms += _CARD_FORM.format(action=f"{action}pay", sub=html.escape(sub.id), card=html.escape(card))
        sections.append(
            f"<section><h2>{html.escape(price._product_name())}</h2><table>{table}</table>{forms}</section>"
        )
    invoices = [
        v
        for k, v in reversed(list(resources.store.items()))
        if k.startswith("invoice:") and isinstance(v, Invoice) and v.customer == portal.customer
    ]
    invoice_rows = "".join(
        f"<tr><td>{html.escape(receipts.date(i.created))}</td>"
        f"<td>{html.escape(receipts.money(i.amount_due, i.currency))}</td><td>{html.escape(i.status)}</td>"
        f'<td><a href="{html.escape(i.hosted_invoice_url)}">View invoice</a></td></tr>'
        for i in invoices
    )
    body = (
        message
        + ("".join(sections) or "<p>No subscriptions.</p>")
        + "<h2>Invoices</h2>"
        + (f"<table>{invoice_rows}</table>" if invoices else "<p>No invoices.</p>")
        + f'<p><a href="{html.escape(portal.return_url)}">Return to hubsite</a></p>'
    )
    return receipts.page("Billing portal", body, status=status)


async def show_portal(request: web.Request) -> web.Response:
    return _portal_page(_lookup(PortalSession, "billing_portal.session", request.match_info["id"]))


def _portal_subscription(request: web.Request) -> tuple[PortalSession, Subscription]:
    portal: PortalSession = _lookup(PortalSession, "billing_portal.session", request.match_info["id"])
    subscription: Subscription = _lookup(Subscription, "subscription", request.match_info["sub"])
    if subscription.customer != portal.customer:  # another customer's: as if it did not exist
        raise _missing("subscription", subscription.id)
    return portal, subscription


async def portal_action(request: web.Request) -> web.StreamResponse:
    portal, subscription = _portal_subscription(request)
    action = request.match_info["action"]
    if action in ("cancel", "keep"):
        if subscription.status not in LIVE_STATUSES:
            return _portal_page(portal, message=checkout._error(f"This plan is {subscription.status}."), status=400)
        _set_cancel_at_period_end(subscription, action == "cancel")
    elif action == "pay":
        if subscription.status != "past_due" or _open_invoice(subscription) is None:
            return _portal_page(portal, message=checkout._error("There is no overdue invoice to pay."), status=400)
        form = await request.post()
        method, problem, status = checkout.read_card(form)
        if method is None:
            card = "".join(str(form.get("card_number", "")).split())
            return _portal_page(portal, message=checkout._error(problem), card=card, status=status)
        resources.PaymentMethod._api_attach(method.id, customer=subscription.customer)
        _pay_overdue(subscription, method.id, checkout.page_base(request))
    else:
        raise UserError(404, "Not Found")
    checkout._save()
    raise web.HTTPSeeOther(f"{PORTAL_PREFIX}{portal.id}")


# -- routing ------------------------------------------------------------------

# Paths localstripe also routes (with its 2017 objects) are answered here first.
OWNED_PREFIXES = ("/v1/prices", "/v1/subscriptions", "/v1/subscription_items", "/v1/invoices", "/v1/billing_portal")
_ID = r"(?P<object_id>[A-Za-z0-9_]+)"
_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[web.StreamResponse]], bool]] = [
    # (method, path, handler, whether the handler may pass the request on to localstripe's route)
    ("POST", re.compile(r"/v1/prices"), create_price, False),
    ("GET", re.compile(r"/v1/prices"), list_prices, False),
    ("GET", re.compile(rf"/v1/prices/{_ID}"), retrieve_price, False),
    ("POST", re.compile(r"/v1/checkout/sessions"), create_checkout_session, True),
    ("GET", re.compile(rf"{checkout.PAGE_PREFIX}{_ID}"), show_checkout_page, True),
    ("POST", re.compile(rf"{checkout.PAGE_PREFIX}{_ID}"), pay_checkout, True),
    ("GET", re.compile(r"/v1/subscriptions"), list_subscriptions, False),
    ("GET", re.compile(rf"/v1/subscriptions/{_ID}"), retrieve_subscription, False),
    ("POST", re.compile(rf"/v1/subscriptions/{_ID}"), update_subscription, False),
    ("DELETE", re.compile(rf"/v1/subscriptions/{_ID}"), cancel_subscription, False),
    ("GET", re.compile(rf"/v1/subscription_items/{_ID}"), retrieve_subscription_item, False),
    ("GET", re.compile(r"/v1/invoices"), list_invoices, False),
    ("GET", re.compile(rf"/v1/invoices/{_ID}"), retrieve_invoice, False),
    ("POST", re.compile(r"/v1/billing_portal/sessions"), create_portal_session, False),
    ("POST", re.compile(rf"/_config/subscriptions/{_ID}/advance"), advance, False),
]


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer the paths this module owns before localstripe's routes can."""
    for method, pattern, view, passes_on in _ROUTES:
        match = pattern.fullmatch(request.path)
        if match is None or request.method != method:
            continue
        args = [match["object_id"]] if "object_id" in pattern.groupindex else []
        if passes_on:
            return await view(request, handler, *args)
        return await view(request, *args)
    if any(request.path == p or request.path.startswith(p + "/") for p in OWNED_PREFIXES):
        raise UserError(404, f"Unrecognized request URL ({request.method}: {request.path}).")
    return await handler(request)


def install(app: web.Application) -> None:
    """Add the pages and the dispatching middleware to localstripe's app (before it starts);
    after ``checkout.install``, so the paths it routes exist."""
    app.middlewares.append(middleware)
    app.router.add_get(INVOICE_PAGE_PREFIX + "{id}", show_invoice)
    app.router.add_get(PORTAL_PREFIX + "{id}", show_portal)
    app.router.add_post(PORTAL_PREFIX + "{id}/subscriptions/{sub}/{action}", portal_action)
