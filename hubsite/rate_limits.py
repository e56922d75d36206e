"""Rate limits on the sign-in forms, counted by django-ratelimit in the ``ratelimit``
cache (Redis, so every web process shares the counts). Counts run in fixed windows of
``RATE_LIMIT_WINDOW_SECONDS``, so a refusal lasts at most one window.

- Log in (the site's form and the admin's): failed attempts per client IP and per
  account name. Once either reaches its limit, every attempt is refused, the right
  password included, until the window ends.
- Sign up: posts per client IP.
- Password reset: posts per client IP and per e-mail address, so no one inbox can be
  flooded from many addresses.

A refused request raises ``TooManyAttempts``; django-ratelimit's middleware turns it
into the 429 page of ``hubsite.views.rate_limited``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from django_ratelimit.exceptions import Ratelimited

View = TypeVar("View", bound=Callable[..., Any])
KeyFunction = Callable[[str, HttpRequest], str]


class TooManyAttempts(Ratelimited):  # type: ignore[misc]  # django-ratelimit ships no types
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"rate limited for {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


def posted_account(field: str) -> KeyFunction:
    """The account a form names in ``field``, spelled the way sign-up stores it."""

    def key(group: str, request: HttpRequest) -> str:
        return request.POST.get(field, "").strip().lower()

    return key


@dataclass(frozen=True)
class Limit:
    group: str
    key: str | KeyFunction  # "ip" (REMOTE_ADDR, or RATELIMIT_IP_META_KEY) or a function
    setting: str  # the setting that holds how many are allowed per window

    def _usage(self, request: HttpRequest, *, increment: bool) -> dict[str, Any] | None:
        rate = (getattr(settings, self.setting), settings.RATE_LIMIT_WINDOW_SECONDS)
        usage = get_usage(request, group=self.group, key=self.key, rate=rate, method="POST", increment=increment)
        return cast("dict[str, Any] | None", usage)

    def seconds_refused(self, request: HttpRequest, *, count: bool) -> int:
        """0 while this request is within the limit, else how long the refusal lasts.
        With ``count`` the request is counted first; without, only a used-up limit refuses."""
        usage = self._usage(request, increment=count)
        if usage is None:  # RATELIMIT_ENABLE is off
            return 0
        over = usage["count"] > usage["limit"] if count else usage["count"] >= usage["limit"]
        return max(1, int(usage["time_left"])) if over else 0

    def count(self, request: HttpRequest) -> None:
        self._usage(request, increment=True)


LOGIN_FAILURES = (
    Limit("login-failures-ip", "ip", "RATE_LIMIT_LOGIN_FAILURES_PER_IP"),
    Limit("login-failures-account", posted_account("username"), "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT"),
)
SIGN_UPS = (Limit("sign-ups-ip", "ip", "RATE_LIMIT_SIGN_UPS_PER_IP"),)
PASSWORD_RESETS = (
    Limit("password-resets-ip", "ip", "RATE_LIMIT_PASSWORD_RESETS_PER_IP"),
    Limit("password-resets-address", posted_account("email"), "RATE_LIMIT_PASSWORD_RESETS_PER_ADDRESS"),
)


def _refuse_if_limited(request: HttpRequest, limits: tuple[Limit, ...], *, count: bool) -> None:
    if request.method != "POST":
        return
    # A list, not a generator: with ``count`` every limit counts the request.
    seconds = max([limit.seconds_refused(request, count=count) for limit in limits])
    if seconds:
        raise TooManyAttempts(seconds)


def refuse_after_login_failures(view: View) -> View:
    """Refuse a login post once its IP or account has used up its failed attempts;
    failures are counted by ``count_login_failure``."""

    @functools.wraps(view)
    def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        _refuse_if_limited(request, LOGIN_FAILURES, count=False)
        return view(request, *args, **kwargs)

    return cast(View, limited)


def limit_posts(*limits: Limit) -> Callable[[View], View]:
    """Count every post to the view; refuse the ones past any of ``limits``."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            _refuse_if_limited(request, limits, count=True)
            return view(request, *args, **kwargs)

        return cast(View, limited)

    return decorate


@receiver(user_login_failed, dispatch_uid="hubsite.rate_limits.count_login_failure")
def count_login_failure(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """Django's ``authenticate`` failed for a login form (the site's or the admin's)."""
    if request is not None and request.method == "POST":
        for limit in LOGIN_FAILURES:
            limit.count(request)
