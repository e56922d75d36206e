"""Checkout Sessions and a stand-in hosted payment page for localstripe.

What it covers, in the shape Stripe's API has it:

- ``POST /v1/checkout/sessions`` (mode ``payment``; ``line_items`` with
  ``price_data`` or ``amount``; ``currency``, ``metadata``, ``success_url``,
  ``cancel_url``, ``client_reference_id``, ``expires_at``; honours
  ``Idempotency-Key``), ``GET /v1/checkout/sessions/{id}`` (``expand[]``),
  ``POST /v1/checkout/sessions/{id}/expire``, ``GET /v1/checkout/sessions``
  (``status``, ``payment_intent``, ``limit``, ``starting_after``).
- The hosted page at ``/_config/checkout/pay/{id}`` (localstripe's auth middleware
  lets ``/_config/`` through without a key, as Stripe's page needs none): a card
  form. ``4242 4242 4242 4242`` pays; ``4000 0000 0000 0002`` (and Stripe's other
  decline test numbers) is declined and nothing is paid. Paying creates a real
  localstripe PaymentIntent and Charge (with a ``receipt_url``, see ``receipts``),
  marks the session complete and paid, sends a signed ``checkout.session.completed``
  event to every registered webhook and redirects to ``success_url``.
- ``POST /_config/checkout/sessions/{id}/refund`` (optional ``amount`` in cents):
  refunds a paid session like Stripe's dashboard would and sends ``charge.refunded``.
  A charge with an open or lost dispute cannot be refunded (as in Stripe).
- ``POST /_config/checkout/sessions/{id}/dispute`` (optional ``amount``, default the
  unrefunded rest, and ``status``, default ``needs_response``; ``warning_needs_response``
  opens an inquiry): the customer's bank disputes the session's charge; sends
  ``charge.dispute.created`` with a ``dispute`` object. One dispute per charge.
- ``POST /_config/disputes/{id}/close`` (``status``: ``won``, ``lost`` or
  ``warning_closed``): the dispute's outcome; sends ``charge.dispute.closed``.
  ``GET /v1/disputes/{id}`` retrieves one.
- ``POST /_config/events/{id}/deliver`` (optional ``times``): delivers a stored
  event again, ``times`` copies at once, and answers with the HTTP statuses our
  endpoint returned (tests use it for concurrent redelivery).

Events carry the API version the session was created with (the client's
``Stripe-Version``), as Stripe sends events in the endpoint's pinned version.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError

from devtools.stripe_emulator import receipts

logger = logging.getLogger("stripe_emulator")

PAGE_PREFIX = "/_config/checkout/pay/"
SUCCEEDING_CARDS = {"4242424242424242", "4000056655665556", "5555555555554444"}
DECLINED_CARDS = {
    "4000000000000002",  # generic decline
    "4000000000009995",  # insufficient funds
    "4000000000009987",  # lost card
    "4000000000009979",  # stolen card
    "4000000000000069",  # expired card
    "4000000000000127",  # incorrect CVC
    "4000000000000341",  # attaches, then fails to charge
}
MIN_EXPIRY_SECONDS = 30 * 60
MAX_EXPIRY_SECONDS = 24 * 60 * 60
DEFAULT_EXPIRY_SECONDS = 24 * 60 * 60
DEFAULT_API_VERSION = "2017-08-15"  # localstripe's own, for clients that send no Stripe-Version

_idempotent_creates: dict[str, str] = {}
_background: set[asyncio.Future[list[int]]] = set()


class CheckoutSession(resources.StripeObject):  # type: ignore[misc]
    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        *,
        page_base: str,
        api_version: str,
        mode: str | None = None,
        line_items: Any = None,
        currency: str | None = None,
        metadata: Any = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        client_reference_id: str | None = None,
        expires_at: Any = None,
        customer_email: str | None = None,
        payment_method_types: Any = None,
        **unexpected: Any,
    ) -> None:
        if unexpected:
            raise UserError(400, "Received unknown parameter: " + ", ".join(sorted(unexpected)))
        if mode != "payment":
            raise UserError(400, "Only mode=payment is emulated.", {"param": "mode"})
        if not isinstance(success_url, str) or not success_url.startswith("http"):
            raise UserError(400, "success_url must be an absolute URL.", {"param": "success_url"})
        if cancel_url is not None and (not isinstance(cancel_url, str) or not cancel_url.startswith("http")):
            raise UserError(400, "cancel_url must be an absolute URL.", {"param": "cancel_url"})
        if metadata is not None and not isinstance(metadata, dict):
            raise UserError(400, "metadata must be a hash.", {"param": "metadata"})
        amount, currency = _total_of(line_items, currency)
        now = int(time.time())
        if expires_at is None:
            expiry = now + DEFAULT_EXPIRY_SECONDS
        else:
            expiry = resources.try_convert_to_int(expires_at)
            if not isinstance(expiry, int) or not (
                now + MIN_EXPIRY_SECONDS - 5 <= expiry <= now + MAX_EXPIRY_SECONDS + 5
            ):
                raise UserError(
                    400, "expires_at must be between 30 minutes and 24 hours from now.", {"param": "expires_at"}
                )

        super().__init__()  # stores the object; no exception may follow

        self.mode = "payment"
        self.amount_subtotal = amount
        self.amount_total = amount
        self.currency = currency
        self.metadata = dict(metadata or {})
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.client_reference_id = client_reference_id
        self.customer_email = customer_email
        self.expires_at = expiry
        self.status = "open"
        self.payment_status = "unpaid"
        self.payment_intent = None
        self.url: str | None = f"{page_base}{PAGE_PREFIX}{self.id}"
        self._api_version = api_version

    def _refresh(self) -> None:
        """Stripe expires an open session at ``expires_at`` by itself."""
        if self.status == "open" and int(time.time()) >= self.expires_at:
            self._expire()

    def _expire(self) -> None:
        self.status = "expired"
        self.url = None
        _save()
        _send_event("checkout.session.expired", self, self._api_version)


def _total_of(line_items: Any, currency: Any) -> tuple[int, str]:
    """The session's amount in minor units and its currency, from its line items."""
    if not isinstance(line_items, list) or not line_items:
        raise UserError(400, "line_items is required in payment mode.", {"param": "line_items"})
    total = 0
    currencies = set()
    for item in line_items:
        if not isinstance(item, dict):
            raise UserError(400, "Invalid line_items.", {"param": "line_items"})
        quantity = resources.try_convert_to_int(item.get("quantity", 1))
        price_data = item.get("price_data")
        if isinstance(price_data, dict):
            unit = resources.try_convert_to_int(price_data.get("unit_amount"))
            item_currency = price_data.get("currency")
        else:  # the older `amount` + `currency` form
            unit = resources.try_convert_to_int(item.get("amount"))
            item_currency = item.get("currency", currency)
        if not isinstance(unit, int) or unit < 0 or not isinstance(quantity, int) or quantity < 1:
            raise UserError(400, "Invalid line item amount or quantity.", {"param": "line_items"})
        if not isinstance(item_currency, str) or not item_currency:
            raise UserError(400, "Each line item needs a currency.", {"param": "line_items"})
        total += unit * quantity
        currencies.add(item_currency.lower())
    if len(currencies) != 1 or (currency is not None and str(currency).lower() not in currencies):
        raise UserError(400, "All line items must share one currency.", {"param": "currency"})
    if total < 50:
        raise UserError(400, "The total must be at least 50 minor units.", {"param": "line_items"})
    return total, currencies.pop()


def _save() -> None:
    resources.store.dump_to_disk()


def _get(session_id: str) -> CheckoutSession:
    session = resources.store.get(f"{CheckoutSession.object}:{session_id}")
    if not isinstance(session, CheckoutSession):
        raise UserError(404, f"No such checkout.session: '{session_id}'", {"code": "resource_missing"})
    session._refresh()
    return session


# -- events -------------------------------------------------------------------


def _send_event(event_type: str, data: Any, api_version: str) -> Any:
    event = resources.Event(event_type, data)
    event.api_version = api_version
    task = asyncio.ensure_future(deliver(event))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return event


def _signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    signed = b"%d.%s" % (timestamp, payload)
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def deliver(event: Any, times: int = 1) -> list[int]:
    """POST the event, signed as Stripe signs it, ``times`` copies at once to every
    registered webhook that wants its type. Returns each delivery's HTTP status
    (0 when the endpoint could not be reached)."""
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    timestamp = int(time.time())
    statuses: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:

        async def post(url: str, secret: str) -> int:
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": _signature_header(payload, secret, timestamp),
            }
            try:
                async with client.post(url, data=payload, headers=headers) as response:
                    logger.info("webhook %s %s -> %s: %d", event.type, event.id, url, response.status)
                    return response.status
            except (TimeoutError, aiohttp.ClientError) as error:
                logger.info("webhook %s %s -> %s failed: %s", event.type, event.id, url, error)
                return 0

        posts = [
            post(hook.url, hook.secret)
            for hook in list(webhooks._webhooks.values())
            if hook.events is None or event.type in hook.events
            for _ in range(times)
        ]
        statuses.extend(await asyncio.gather(*posts))
    return statuses


# -- the API ------------------------------------------------------------------


def _json(obj: Any, status: int = 200) -> web.Response:
    response: web.Response = server.json_response(obj._export() if hasattr(obj, "_export") else obj, status=status)
    return response


async def create_session(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key")
    if key and key in _idempotent_creates:
        return _json(_get(_idempotent_creates[key]))
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    session = CheckoutSession(
        page_base=page_base(request),
        api_version=request.headers.get("Stripe-Version", DEFAULT_API_VERSION),
        **data,
    )
    if key:
        _idempotent_creates[key] = session.id
    return _json(session)


async def retrieve_session(request: web.Request) -> web.Response:
    """``expand[]`` works as in Stripe (e.g. ``subscription``, ``payment_intent``)."""
    expand = server.unflatten_data(request.query).get("expand")
    response: web.Response = server.json_response(_get(request.match_info["id"])._export(expand=expand))
    return response


async def expire_session(request: web.Request) -> web.Response:
    session = _get(request.match_info["id"])
    if session.status != "open":
        raise UserError(
            400,
            f'Only Checkout Sessions with a status in ["open"] can be expired; this one is {session.status}.',
        )
    session._expire()
    return _json(session)


async def list_sessions(request: web.Request) -> web.Response:
    query = server.unflatten_data(request.query)
    status = query.pop("status", None)
    payment_intent = query.pop("payment_intent", None)
    listing = resources.List(
        "/v1/checkout/sessions", limit=query.pop("limit", None), starting_after=query.pop("starting_after", None)
    )
    query.pop("expand", None)
    if query:
        raise UserError(400, "Received unknown parameter: " + ", ".join(sorted(query)))
    sessions = [value for key, value in list(resources.store.items()) if key.startswith("checkout.session:")]
    for session in sessions:
        session._refresh()
    listing._list = sorted(
        (
            s
            for s in sessions
            if (status is None or s.status == status) and (payment_intent is None or s.payment_intent == payment_intent)
        ),
        key=lambda s: s.created,
        reverse=True,
    )
    return _json(listing)


# -- the hosted page ----------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pay · local Stripe emulator</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}
label{{display:block;margin:.8rem 0 .2rem}} input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}
.row{{display:flex;gap:.5rem}} .row>div{{flex:1}} button{{margin-top:1rem;width:100%;padding:.7rem;font-size:1rem}}
.error{{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}}
.note{{color:#555;font-size:.9rem}} .amount{{font-size:1.6rem;font-weight:600}}
</style></head><body>
<p class="note">Local Stripe emulator: a stand-in for Stripe's hosted payment page. No real card is charged.</p>
<h1>Pay</h1>
<p class="amount">{amount}</p>
{message}
{form}
</body></html>"""

_FORM = """<form method="post" action="{action}">
<label for="card">Card number</label>
<input id="card" name="card_number" inputmode="numeric" autocomplete="cc-number" value="{card}" required>
<div class="row">
<div><label for="exp">Expiry (MM/YY)</label><input id="exp" name="expiry" value="{expiry}" required></div>
<div><label for="cvc">CVC</label><input id="cvc" name="cvc" inputmode="numeric" value="{cvc}" required></div>
</div>
<button type="submit">Pay {amount}</button>
</form>
<p class="note">Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.</p>
{cancel}"""


def _money(cents: int, currency: str) -> str:
    if currency == "usd":
        return f"US${cents // 100:,}.{cents % 100:02d}"
    return f"{cents} {currency.upper()} (minor units)"


def _page(session: CheckoutSession, *, message: str = "", card: str = "", status: int = 200) -> web.Response:
    amount = _money(session.amount_total, session.currency)
    if session.status == "open":
        cancel = (
            f'<p><a href="{html.escape(session.cancel_url)}">Cancel and go back</a></p>' if session.cancel_url else ""
        )
        form = _FORM.format(
            action=html.escape(PAGE_PREFIX + session.id),
            card=html.escape(card),
            expiry="12/34",
            cvc="123",
            amount=amount,
            cancel=cancel,
        )
    elif session.status == "complete":
        form = "<p>This checkout has been paid.</p>"
    else:
        form = "<p>This checkout has expired. Nothing was charged.</p>"
    body = _PAGE.format(amount=amount, message=message, form=form)
    return web.Response(text=body, content_type="text/html", status=status)


def _error(text: str) -> str:
    return f'<p class="error" role="alert">{html.escape(text)}</p>'


async def show_page(request: web.Request) -> web.Response:
    return _page(_get(request.match_info["id"]))


def read_card(form: Any) -> tuple[Any, str, int]:
    """The card typed on a stand-in page as a new localstripe PaymentMethod, or
    ``(None, message, HTTP status)`` when it cannot pay (declined, mistyped, not a
    test card). Nothing is created for a refused card."""
    card = "".join(str(form.get("card_number", "")).split())
    expiry = str(form.get("expiry", "")).replace(" ", "")
    cvc = str(form.get("cvc", "")).strip()
    month_text, _, year_text = expiry.partition("/")
    if not (card.isdigit() and len(card) == 16):
        return None, "Enter a 16-digit card number.", 400
    if not (month_text.isdigit() and year_text.isdigit() and 1 <= int(month_text) <= 12):
        return None, "Enter the expiry as MM/YY.", 400
    if not (cvc.isdigit() and len(cvc) == 3):
        return None, "Enter the 3-digit CVC.", 400
    if card in DECLINED_CARDS:
        return None, "Your card was declined. Nothing was charged.", 402
    if card not in SUCCEEDING_CARDS:
        return None, "This emulator accepts Stripe's test cards only, e.g. 4242 4242 4242 4242.", 400
    year = int(year_text) + (2000 if len(year_text) == 2 else 0)
    method = resources.PaymentMethod(
        type="card", card={"number": card, "exp_month": month_text, "exp_year": str(year), "cvc": cvc}
    )
    return method, "", 200


def page_base(request: web.Request) -> str:
    """The emulator's own address as the client reached it, for the URLs it hands out."""
    return f"{request.scheme}://{request.host}"


async def pay(request: web.Request) -> web.StreamResponse:
    session = _get(request.match_info["id"])
    if session.status != "open":
        return _page(session, status=409)
    form = await request.post()
    method, problem, status = read_card(form)
    if method is None:
        card = "".join(str(form.get("card_number", "")).split())
        return _page(session, message=_error(problem), card=card, status=status)
    intent = resources.PaymentIntent(
        amount=session.amount_total,
        currency=session.currency,
        payment_method=method.id,
        metadata=dict(session.metadata),
    )
    intent._confirm(on_failure_now=intent._report_failure)
    receipts.give_receipt(intent.latest_charge, page_base(request))
    session.status = "complete"
    session.payment_status = "paid"
    session.payment_intent = intent.id
    session.url = None
    _save()
    _send_event("checkout.session.completed", session, session._api_version)
    raise web.HTTPSeeOther(session.success_url.replace("{CHECKOUT_SESSION_ID}", session.id))


async def refund(request: web.Request) -> web.Response:
    session = _get(request.match_info["id"])
    if session.status != "complete" or not session.payment_intent:
        raise UserError(400, "Only a paid Checkout Session can be refunded.")
    disputed = _dispute_of(_charge_of(session))
    if disputed is not None and not disputed.is_charge_refundable:
        raise UserError(400, f"The charge is disputed ({disputed.status}) and cannot be refunded.")
    data = await server.get_post_data(request) or {}
    resources.Refund(payment_intent=session.payment_intent, amount=data.get("amount"))
    charge = _charge_of(session)
    event = _send_event("charge.refunded", charge, session._api_version)
    return _json({"event": event.id, "charge": charge.id, "amount_refunded": charge.amount_refunded})


class Dispute(resources.StripeObject):  # type: ignore[misc]
    """A charge's dispute, in the shape of Stripe's ``dispute`` object (the fields our
    webhook reads and a few more); localstripe has none."""

    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, *, charge: Any, amount: int, status: str) -> None:
        super().__init__()
        self.charge = charge.id
        self.payment_intent = charge.payment_intent
        self.amount = amount
        self.currency = charge.currency
        self.reason = "fraudulent"
        self.status = status
        self.is_charge_refundable = False
        self.evidence: dict[str, Any] = {}
        self.metadata: dict[str, str] = {}
        self.balance_transactions: list[Any] = []


OPEN_DISPUTE_STATUSES = {"warning_needs_response", "needs_response"}
CLOSED_DISPUTE_STATUSES = {"won", "lost", "warning_closed"}


def _charge_of(session: CheckoutSession) -> Any:
    if session.status != "complete" or not session.payment_intent:
        raise UserError(400, "Only a paid Checkout Session has a charge.")
    return resources.PaymentIntent._api_retrieve(session.payment_intent).latest_charge


def _dispute_of(charge: Any) -> Dispute | None:
    dispute = getattr(charge, "dispute", None)
    return None if dispute is None else Dispute._api_retrieve(dispute)


async def dispute(request: web.Request) -> web.Response:
    session = _get(request.match_info["id"])
    charge = _charge_of(session)
    if _dispute_of(charge) is not None:
        raise UserError(400, f"Charge {charge.id} already has a dispute.")
    data = await server.get_post_data(request) or {}
    rest = charge.amount - (charge.amount_refunded or 0)
    amount = resources.try_convert_to_int(data.get("amount", rest))
    status = data.get("status", "needs_response")
    if not isinstance(amount, int) or not 0 < amount <= rest:
        raise UserError(400, f"amount must be between 1 and the unrefunded {rest}.")
    if status not in OPEN_DISPUTE_STATUSES:
        raise UserError(400, "status must be one of " + ", ".join(sorted(OPEN_DISPUTE_STATUSES)) + ".")
    opened = Dispute(charge=charge, amount=amount, status=status)
    charge.dispute = opened.id
    charge.disputed = True
    _save()
    event = _send_event("charge.dispute.created", opened, session._api_version)
    return _json({"event": event.id, "dispute": opened.id, "amount": amount})


async def close_dispute(request: web.Request) -> web.Response:
    disputed = Dispute._api_retrieve(request.match_info["id"])
    if disputed.status in CLOSED_DISPUTE_STATUSES:
        raise UserError(400, f"Dispute {disputed.id} is already closed ({disputed.status}).")
    data = await server.get_post_data(request) or {}
    status = data.get("status")
    if status not in CLOSED_DISPUTE_STATUSES:
        raise UserError(400, "status must be one of " + ", ".join(sorted(CLOSED_DISPUTE_STATUSES)) + ".")
    disputed.status = status
    disputed.is_charge_refundable = status in ("won", "warning_closed")
    _save()
    sessions = [v for k, v in list(resources.store.items()) if k.startswith("checkout.session:")]
    api_version = next(
        (s._api_version for s in sessions if s.payment_intent == disputed.payment_intent), DEFAULT_API_VERSION
    )
    event = _send_event("charge.dispute.closed", disputed, api_version)
    return _json({"event": event.id, "dispute": disputed.id, "status": status})


async def retrieve_dispute(request: web.Request) -> web.Response:
    return _json(Dispute._api_retrieve(request.match_info["id"]))


async def redeliver(request: web.Request) -> web.Response:
    event = resources.Event._api_retrieve(request.match_info["id"])
    data = await server.get_post_data(request) or {}
    times = resources.try_convert_to_int(data.get("times", 1))
    if not isinstance(times, int) or not 1 <= times <= 50:
        raise UserError(400, "times must be between 1 and 50.")
    return _json({"statuses": await deliver(event, times)})


def install(app: web.Application) -> None:
    """Add the Checkout routes to localstripe's app (before it starts)."""
    app.router.add_post("/v1/checkout/sessions", create_session)
    app.router.add_get("/v1/checkout/sessions", list_sessions)
    app.router.add_get("/v1/checkout/sessions/{id}", retrieve_session)
    app.router.add_post("/v1/checkout/sessions/{id}/expire", expire_session)
    app.router.add_get(PAGE_PREFIX + "{id}", show_page)
    app.router.add_post(PAGE_PREFIX + "{id}", pay)
    app.router.add_post("/_config/checkout/sessions/{id}/refund", refund)
    app.router.add_post("/_config/checkout/sessions/{id}/dispute", dispute)
    app.router.add_post("/_config/disputes/{id}/close", close_dispute)
    app.router.add_get("/v1/disputes/{id}", retrieve_dispute)
    app.router.add_post("/_config/events/{id}/deliver", redeliver)
