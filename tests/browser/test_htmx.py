"""The htmx forms in a real Chromium, with DEBUG off as in production (and on where
django-htmx's debug handler could get in the way): errors show in place, a submit
never loses to an estimate in flight, and a value typed meanwhile is kept.

Requests are held with Playwright's ``page.route`` to fix the order in which the
server's answers reach the browser; the answers themselves come from the live server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.urls import reverse
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from hubsite.models import User
from tests.browser.chromium import ARTIFACTS, PHONE, browser_marks, log_in, shot, shot_on_phone
from tests.factories import cpu_instance, fund
from training.models import EpochRecord, TrainingSession, YoloModel

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

pytestmark = browser_marks

Status = TrainingSession.Status


def stopped_after(model: YoloModel, epochs: int) -> None:
    """``model`` stopped after ``epochs`` epochs, with the checkpoint Resume continues from."""
    session = TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=epochs + 1, status=Status.STOPPED
    )
    now = timezone.now()
    EpochRecord.objects.bulk_create(
        EpochRecord(session=session, model=model, epoch=epoch, started_at=now, finished_at=now, duration_ms=1500,
                    metrics={"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.2})
        for epoch in range(1, epochs + 1)
    )  # fmt: skip
    checkpoint = f"{model.storage_prefix}/checkpoints/epoch-{epochs:04d}.pt"
    YoloModel.objects.filter(pk=model.pk).update(epochs_completed=epochs, last_checkpoint=checkpoint)


def is_estimate(url: str) -> bool:
    return "mode=" in url  # the start form's values, sent as the query of its estimate request


class Held:
    """Requests to some URLs, held in the browser until the test lets them go."""

    def __init__(self, page: Page, url: str | Callable[[str], bool]) -> None:
        self.routes: list[Route] = []
        page.route(url, lambda route: self.routes.append(route))

    def release_all(self) -> None:
        from playwright.sync_api import Error

        for route in self.routes:
            with contextlib.suppress(Error):  # the browser aborted it meanwhile
                route.continue_()
        self.routes.clear()


def wait_until(page: Page, condition: Any, timeout_ms: int = 10_000) -> None:
    for _ in range(timeout_ms // 50):
        if condition():
            return
        page.wait_for_timeout(50)  # lets Playwright deliver the route events meanwhile
    raise AssertionError("condition not met in time")


def test_resume_right_after_editing_the_target_shows_the_new_session(
    page: Page, live_server: LiveServer, user: User, model: YoloModel, cpu_online: None
) -> None:
    from playwright.sync_api import expect

    fund(user, as_adjustment=True)
    stopped_after(model, 2)
    log_in(page, live_server, user)
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request))
    page.goto(live_server.url + reverse("training:train_page", args=[model.uid]))
    expect(page.locator(".session-status")).to_contain_text("Stopped after epoch 2")

    # The edit's estimate answers first (it was rendered before the session existed),
    # then the Resume: the order in which the issue saw the stale panel win.
    estimates = Held(page, is_estimate)
    starts = Held(page, "**/train/start/")
    page.fill("input[name=epochs]", "8")
    page.click("button:has-text('Resume Training')")  # the field's change fires on the way
    wait_until(page, lambda: starts.routes)
    estimates.release_all()
    page.wait_for_timeout(500)
    starts.release_all()

    expect(page.locator(".session-status")).to_contain_text("Queued for CPU (demo)")
    page.wait_for_timeout(500)  # nothing late may land over it
    expect(page.locator(".session-status")).to_contain_text("Queued for CPU (demo)")
    expect(page.locator("button:has-text('Resume Training')")).to_have_count(0)
    shot(page, "htmx-resume-after-edit")
    session = TrainingSession.objects.get(status=Status.QUEUED)
    assert session.target_epochs == 8
    assert [request for request in sent if is_estimate(request.url)], "the edit asked for an estimate"
    assert not [request.url for request in sent if "csrfmiddlewaretoken" in request.url]


def test_a_value_typed_while_the_estimate_loads_is_kept(
    page: Page, live_server: LiveServer, user: User, model: YoloModel, cpu_online: None
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server, user)
    page.goto(live_server.url + reverse("training:train_page", args=[model.uid]))
    page.check("input[name=mode][value=timed]")
    expect(page.locator(".estimate")).to_contain_text("Price: ")

    estimates = Held(page, is_estimate)
    page.fill("input[name=hours]", "2")
    page.click("input[name=minutes]")  # leaving Hours asks for an estimate
    wait_until(page, lambda: estimates.routes)
    page.keyboard.press("Control+A")
    page.keyboard.type("5")  # while that estimate is in flight
    estimates.release_all()
    expect(page.locator(".estimate")).to_contain_text("Price: US$0.40")

    expect(page.locator("input[name=minutes]")).to_have_value("5")
    expect(page.locator("input[name=hours]")).to_have_value("2")
    expect(page.locator("input[name=minutes]")).to_be_focused()
    shot_on_phone(page, "htmx-typing-during-estimate-phone")


def test_switching_mode_updates_what_blocks_start_without_re_rendering_the_form(
    page: Page, live_server: LiveServer, user: User, model: YoloModel, cpu_online: None
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server, user)  # US$0.00: Epochs mode needs US$5.00, Timed does not
    page.goto(live_server.url + reverse("training:train_page", args=[model.uid]))
    start = page.locator("button:has-text('Start Training')")
    expect(start).to_be_disabled()
    expect(page.locator(".blockers")).to_contain_text("Epochs mode needs at least US$5.00")
    page.fill("input[name=epochs]", "7")

    page.check("input[name=mode][value=timed]")
    expect(page.locator(".estimate")).to_contain_text("Price: US$0.20")  # the default hour at US$0.20/h
    expect(page.locator(".blockers")).to_have_count(0)
    expect(start).to_be_enabled()
    expect(page.locator("input[name=epochs]")).to_be_hidden()
    page.check("input[name=mode][value=epochs]")
    expect(start).to_be_disabled()
    expect(page.locator("input[name=epochs]")).to_have_value("7")


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_refused_start_shows_why_in_place(
    page: Page, live_server: LiveServer, user: User, model: YoloModel, cpu_online: None, settings: Any, debug: bool
) -> None:
    from playwright.sync_api import expect

    settings.DEBUG = debug  # on: django-htmx's debug script must not replace the page
    log_in(page, live_server, user)
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    train_url = live_server.url + reverse("training:train_page", args=[model.uid])
    page.goto(train_url)
    page.check("input[name=mode][value=timed]")
    page.fill("input[name=hours]", "0")
    page.fill("input[name=minutes]", "5")
    page.check("input[name=payment][value=pay_now]")
    page.click("button:has-text('Start Training')")

    errors = page.locator("#train-panel .errors")
    expect(errors).to_contain_text("This session costs less than US$0.50, Stripe's smallest card payment")
    expect(errors).to_be_in_viewport()  # scrolled to, from the button at the bottom of the form
    expect(page.locator("header.topbar")).to_be_attached()  # the page, not a bare fragment
    expect(page.locator("link[rel=stylesheet]")).to_be_attached()
    expect(page.locator("#train-panel input[name=minutes]")).to_have_value("5")
    assert page.url == train_url
    page.screenshot(path=str(ARTIFACTS / f"htmx-start-refused-phone-{'debug' if debug else 'production'}.png"))
    assert not TrainingSession.objects.exists()


def test_a_resume_below_the_completed_epochs_says_so_in_place(
    page: Page, live_server: LiveServer, user: User, model: YoloModel, cpu_online: None
) -> None:
    from playwright.sync_api import expect

    fund(user, as_adjustment=True)
    stopped_after(model, 5)
    log_in(page, live_server, user)
    page.goto(live_server.url + reverse("training:train_page", args=[model.uid]))
    page.fill("input[name=epochs]", "4")
    page.click("button:has-text('Resume Training')")
    expect(page.locator("#train-panel .errorlist")).to_contain_text("the target must be at least 6")
    expect(page.locator("#train-panel .errorlist")).to_be_in_viewport()
    expect(page.locator("header.topbar")).to_be_attached()
    assert TrainingSession.objects.get().status == Status.STOPPED


def test_upload_errors_show_in_the_form(
    page: Page, live_server: LiveServer, user: User, settings: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    settings.DATASET_MAX_UPLOAD_BYTES = 10_000
    log_in(page, live_server, user)
    upload_url = live_server.url + reverse("training:dataset_upload")
    page.goto(upload_url)

    # Too large: 413, and the form says so where the file was chosen.
    big = tmp_path / "big.zip"
    big.write_bytes(b"0" * 50_000)
    page.set_input_files("input[type=file]", big)
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-form .errors")).to_contain_text("9.8 KB")  # names the limit
    expect(page.locator("#upload-form .errors")).to_be_in_viewport()
    expect(page.locator("header.topbar")).to_be_attached()
    expect(page.locator("#upload-form button[type=submit]")).to_be_enabled()
    shot(page, "htmx-upload-too-large")

    # No file (a browser that does not check `required`): 400, the field's message.
    page.eval_on_selector("input[type=file]", "input => { input.required = false; input.value = ''; }")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-form .errors")).to_contain_text("This field is required.")
    shot_on_phone(page, "htmx-upload-missing-file-phone")
    assert page.url == upload_url


def test_a_server_error_shows_a_banner_until_a_request_succeeds(
    page: Page, live_server: LiveServer, user: User, model: YoloModel
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server, user)
    page.goto(live_server.url + reverse("training:train_page", args=[model.uid]))
    banner = page.locator("#request-error")
    expect(banner).to_be_hidden()

    page.route(is_estimate, lambda route: route.fulfill(status=500, body="Server Error"))
    page.check("input[name=mode][value=timed]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("The server could not complete this request (error 500)")
    expect(page.locator("input[name=hours]")).to_be_visible()  # the form stays as it was
    shot_on_phone(page, "htmx-server-error-phone")

    page.unroute(is_estimate)
    page.check("input[name=mode][value=epochs]")
    expect(banner).to_be_hidden()
