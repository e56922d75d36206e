"""Rate limits on log in, sign up and password reset, through the real views and the
real Redis cache (hubsite/rate_limits.py)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from hubsite.models import User
from tests.factories import PASSWORD

WINDOW = 600


@pytest.fixture(autouse=True)
def small_limits(settings: Any) -> None:
    settings.RATE_LIMIT_WINDOW_SECONDS = WINDOW
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT = 3
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_IP = 5
    settings.RATE_LIMIT_SIGN_UPS_PER_IP = 2
    settings.RATE_LIMIT_PASSWORD_RESETS_PER_IP = 3
    settings.RATE_LIMIT_PASSWORD_RESETS_PER_ADDRESS = 2


def log_in(client: Client, username: str, password: str, ip: str = "10.0.0.1", path: str = "") -> Any:
    return client.post(path or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def assert_refused(response: Any) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many attempts" in page
    assert "try again in" in page
    assert 'href="/accounts/signup/"' in page  # the site's layout, not a bare error
    assert 0 < int(response["Retry-After"]) <= WINDOW


def test_failed_logins_lock_the_account_even_for_the_right_password_until_the_window_ends(user: User) -> None:
    client = Client()
    with time_machine.travel("2030-01-01 12:00:00Z", tick=False) as clock:
        for _ in range(3):
            assert log_in(client, user.email, "wrong").status_code == 200

        refused = log_in(client, user.email, PASSWORD)
        assert_refused(refused)
        assert not logged_in(client)
        # The whole account is locked, whatever the address or spelling it is tried from.
        assert_refused(log_in(Client(), "  OWNER@Example.com", PASSWORD, ip="10.9.9.9"))
        assert Client().get(reverse("login")).status_code == 200  # the form itself still shows

        clock.shift(WINDOW + 1)
        response = log_in(client, user.email, PASSWORD)
        assert response.status_code == 302
        assert logged_in(client)


def test_failed_logins_from_one_address_lock_that_address_for_every_account(user: User, outsider: User) -> None:
    client = Client()
    for n in range(5):
        assert log_in(client, f"guess-{n}@example.com", "wrong").status_code == 200

    assert_refused(log_in(client, outsider.email, PASSWORD))
    assert not logged_in(client)
    elsewhere = Client()
    assert log_in(elsewhere, outsider.email, PASSWORD, ip="10.0.0.2").status_code == 302


def test_normal_users_are_unaffected(user: User, outsider: User) -> None:
    for _ in range(8):  # more successful logins than any limit allows failures
        client = Client()
        assert log_in(client, user.email, PASSWORD).status_code == 302
        assert logged_in(client)
    client = Client()
    for _ in range(2):  # a couple of typos, then the right password
        assert log_in(client, outsider.email, "typo").status_code == 200
    assert log_in(client, outsider.email, PASSWORD).status_code == 302
    # Another account's failures from another address leave this one alone.
    for _ in range(4):
        log_in(Client(), outsider.email, "wrong", ip="10.7.7.7")
    assert log_in(Client(), user.email, PASSWORD).status_code == 302


def test_the_admin_login_counts_and_obeys_the_same_limits(db: None) -> None:
    staff = User.objects.create_superuser("staff@example.com", PASSWORD)
    admin_login = reverse("admin:login")
    client = Client()
    for _ in range(3):
        assert log_in(client, staff.email, "wrong", path=admin_login).status_code == 200

    assert_refused(log_in(client, staff.email, PASSWORD, path=admin_login))
    assert_refused(log_in(Client(), staff.email, PASSWORD))  # and the site's form, for the same account
    assert Client().get(reverse("admin:index")).status_code == 302  # anonymous still sent to the admin login


def test_counts_live_in_redis_under_their_own_prefix(user: User) -> None:
    log_in(Client(), user.email, "wrong")
    prefix = django_settings.CACHES["ratelimit"]["KEY_PREFIX"]
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        assert list(client.scan_iter(f"{prefix}:*"))
    finally:
        client.close()


def sign_up(client: Client, email: str, ip: str = "10.0.0.1") -> Any:
    return client.post(
        reverse("signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}, REMOTE_ADDR=ip
    )


def test_sign_ups_are_limited_per_address(db: None) -> None:
    assert sign_up(Client(), "first@example.com").status_code == 302
    assert sign_up(Client(), "second@example.com").status_code == 302

    assert_refused(sign_up(Client(), "third@example.com"))
    assert not User.objects.filter(email="third@example.com").exists()
    assert sign_up(Client(), "third@example.com", ip="10.0.0.2").status_code == 302


def reset(email: str, ip: str = "10.0.0.1") -> Any:
    return Client().post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=ip)


def test_password_resets_are_limited_per_client_address(user: User) -> None:
    for n in range(3):
        assert reset(f"nobody-{n}@example.com").status_code == 302

    assert_refused(reset(user.email))
    assert mail.outbox == []
    assert reset(user.email, ip="10.0.0.2").status_code == 302
    assert len(mail.outbox) == 1


def test_password_resets_are_limited_per_email_address(user: User) -> None:
    assert reset(user.email, ip="10.0.0.1").status_code == 302
    assert reset(user.email.upper(), ip="10.0.0.2").status_code == 302

    assert_refused(reset(user.email, ip="10.0.0.3"))
    assert len(mail.outbox) == 2
