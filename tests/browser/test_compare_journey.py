"""Comparing models in a real Chromium: tick two models on the list, press Compare,
read the tables and charts; on a phone the page itself never scrolls sideways (the
tables scroll in their own box and the charts shrink to fit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_django.live_server_helper import LiveServer

from hubsite.models import User
from tests.browser.chromium import PHONE, browser_marks, log_in, shot, shot_on_phone
from tests.factories import fund
from tests.training.compare_runs import detect_metrics, evaluate, make_run

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = browser_marks


def test_a_user_compares_two_models_on_desktop_and_phone(page: Page, live_server: LiveServer, user: User) -> None:
    from playwright.sync_api import expect

    fund(user, 50_000_000)
    first = make_run(user, "baseline", [detect_metrics(e / 10) for e in range(1, 6)], train_args={"lr0": 0.01})
    second = make_run(
        user,
        "bigger images with a longer name",
        [detect_metrics(e / 8) for e in range(1, 8)],
        train_args={"lr0": 0.01, "imgsz": 640},
    )
    make_run(user, "not picked", [detect_metrics(0.1)])
    evaluate(first, map50=0.7)
    evaluate(second, map50=0.8)
    log_in(page, live_server, user)

    page.goto(f"{live_server.url}/models/")
    page.check(f"input[name=m][value='{first.uid}']")
    page.check(f"input[name=m][value='{second.uid}']")
    page.click("button:has-text('Compare')")

    expect(page.locator("h1")).to_have_text("Compare models")
    assert f"m={first.uid}" in page.url
    # in the list's order, newest first
    expect(page.locator(".compare-models li")).to_have_text(["bigger images with a longer name", "baseline"])
    expect(page.locator("figure.chart")).to_have_count(3)
    imgsz = page.locator("tr.differs", has_text="imgsz")
    expect(imgsz).to_contain_text("differs")
    expect(page.locator("td.best").first).to_contain_text("best")
    assert "not picked" not in page.content()
    shot(page, "compare-desktop")

    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px on a phone"
    chart_width = page.locator("figure.chart svg").first.bounding_box()["width"]  # type: ignore[index]
    assert chart_width <= PHONE["width"]
    shot_on_phone(page, "compare-phone")
