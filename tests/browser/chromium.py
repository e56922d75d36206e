"""Shared by the browser tests: a real Chromium (Debian's) driven by Playwright's sync
API against the live server (the ``page`` fixture in conftest.py), screenshots in
test-artifacts/browser/, and logging in.

Tests that use these run with DEBUG off (pytest-django's default), as in production.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from hubsite.models import User

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

browser_marks = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"),
]


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def shot_on_phone(page: Page, name: str) -> None:
    """The same page at a phone's width, then back to the desktop size."""
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    shot(page, name)
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]


def log_in(page: Page, live_server: LiveServer, user: User) -> None:
    """Give the browser a logged-in session cookie (the login form has its own tests)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
