"""The browser tests' ``page``: a tab of a real Chromium on the live server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.db import connections
from pytest_django.live_server_helper import LiveServer

from tests.browser.chromium import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, DESKTOP

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def page(live_server: LiveServer) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls are still plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport=DESKTOP, accept_downloads=True)  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("dialog", lambda dialog: dialog.accept())  # "Stop training?" confirmations
        yield page
        # While Playwright runs, Django sees an event loop in this thread and keeps the
        # test's database connection in that context, where the test case's own
        # teardown cannot reach it: close it here, or it outlives the test database.
        connections.close_all()
        context.close()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
