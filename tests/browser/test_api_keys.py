"""An API key made on its page in a real Chromium: read from the page, it works
against the live server's API; revoked on the page, it stops working."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests
from pytest_django.live_server_helper import LiveServer

from api.models import ApiKey
from hubsite.models import User
from tests.browser.chromium import PHONE, browser_marks, log_in, shot, shot_on_phone

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = browser_marks


def _me(live_server: LiveServer, key: str) -> requests.Response:
    return requests.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_key_made_on_the_page_works_until_revoked_on_the_page(
    page: Page, live_server: LiveServer, user: User
) -> None:
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.wait_for_url("**/account/api-keys/")
    assert page.get_by_role("link", name="API documentation").get_attribute("href") == "/api/v1/docs"

    page.get_by_label("Name").fill("notebook")
    page.get_by_label("Train: upload, create, start, stop, remote training").check()
    page.get_by_role("button", name="Create key").click()
    page.get_by_text("It will not be shown again", exact=False).wait_for()
    key = page.locator("#new-api-key").input_value()
    assert key.startswith("hub_")
    page.get_by_role("button", name="Copy").click()
    status = page.locator("#copy-status")
    status.wait_for()
    page.wait_for_function("document.getElementById('copy-status').textContent.length > 0")
    shot(page, "api-key-created")
    shot_on_phone(page, "api-key-created-phone")

    answer = _me(live_server, key)
    assert answer.status_code == 200
    assert answer.json() == {"email": user.email, "key_name": "notebook", "scopes": ["read", "train"]}

    page.get_by_role("link", name="Done").click()
    row = page.get_by_role("row", name="notebook")
    assert "never" not in row.inner_text()  # the call above was its first use
    assert key not in page.content()
    row.get_by_role("link", name="Revoke").click()
    page.get_by_role("button", name="Revoke key").click()
    page.get_by_text("Revoked the key", exact=False).wait_for()
    assert ApiKey.objects.get(owner=user).revoked_at is not None

    refused = _me(live_server, key)
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"


def test_the_navigation_reaches_api_keys_on_a_phone(page: Page, live_server: LiveServer, user: User) -> None:
    width = PHONE["width"]
    log_in(page, live_server, user)
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.goto(f"{live_server.url}/")
    link = page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys")
    link.scroll_into_view_if_needed()
    assert link.is_visible()
    box = link.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    link.click()
    page.wait_for_url("**/account/api-keys/")
    page_width = page.evaluate("document.documentElement.scrollWidth")
    shot(page, "api-keys-phone")
    assert page_width <= width  # nothing on the page scrolls sideways
