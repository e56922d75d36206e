"""Stand-in receipt pages for the charges the emulator creates.

Stripe gives every charge a ``receipt_url``, a page the customer can open without a
key. The emulator's is ``{base}/_config/receipts/{charge id}`` (``/_config/`` needs no
key in localstripe either): the amount, the date, what was refunded. Checkout in
payment mode and every subscription invoice that is charged set it on the Charge,
so ``GET /v1/charges/{id}`` and the ``latest_charge`` that localstripe embeds in
``GET /v1/payment_intents/{id}`` both carry it.
"""

from __future__ import annotations

import html
import time
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError

RECEIPT_PREFIX = "/_config/receipts/"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · local Stripe emulator</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}
table{{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}}
td,th{{text-align:left;padding:.35rem;border-bottom:1px solid #ddd}}
label{{display:block;margin:.6rem 0 .2rem}} input{{padding:.4rem;font-size:1rem}}
button{{padding:.45rem .8rem;font-size:.95rem;margin:.2rem 0}}
.error{{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}}
.note{{color:#555;font-size:.9rem}} section{{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}}
</style></head><body>
<p class="note">Local Stripe emulator: a stand-in for a page Stripe hosts. No real card is charged.</p>
<h1>{title}</h1>
{body}
</body></html>"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    """An HTML page in the emulator's frame; ``title`` is escaped here, ``body`` must be already."""
    return web.Response(text=PAGE.format(title=html.escape(title), body=body), content_type="text/html", status=status)


def money(cents: int, currency: str) -> str:
    if currency == "usd":
        return f"US${cents // 100:,}.{cents % 100:02d}"
    return f"{cents} {currency.upper()} (minor units)"


def date(timestamp: int | None) -> str:
    if timestamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def give_receipt(charge: Any, base: str) -> None:
    """Give a charge its ``receipt_url``, as Stripe does for every charge."""
    charge.receipt_url = f"{base}{RECEIPT_PREFIX}{charge.id}"


async def show_receipt(request: web.Request) -> web.Response:
    charge_id = request.match_info["id"]
    charge = resources.store.get(f"charge:{charge_id}")
    if charge is None or not hasattr(charge, "receipt_url"):
        raise UserError(404, f"No such receipt: '{charge_id}'")
    rows = [
        ("Receipt for", charge.id),
        ("Amount paid", money(charge.amount, charge.currency)),
        ("Date", date(charge.created)),
        ("Status", charge.status),
        ("Refunded", money(charge.amount_refunded or 0, charge.currency)),
    ]
    if getattr(charge, "invoice", None):
        rows.append(("Invoice", charge.invoice))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return page("Receipt", f"<table>{table}</table>")


def install(app: web.Application) -> None:
    app.router.add_get(RECEIPT_PREFIX + "{id}", show_receipt)
