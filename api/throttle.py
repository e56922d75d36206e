"""Requests per API key per minute, counted by django-ratelimit in the shared
``ratelimit`` cache (Redis), so every web process sees the same count."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit import ALL
from django_ratelimit.core import get_usage
from ninja.throttling import BaseThrottle

from api.models import ApiKey


def _key_id(group: str, request: HttpRequest) -> str:
    api_key = getattr(request, "auth", None)
    return str(api_key.pk) if isinstance(api_key, ApiKey) else ""


class PerKeyThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after = 0

    def allow_request(self, request: HttpRequest) -> bool:
        if not _key_id("", request):
            return True  # not authenticated: the auth check answers first
        rate = (settings.API_REQUESTS_PER_MINUTE_PER_KEY, 60)
        usage = get_usage(request, group="api-key", key=_key_id, rate=rate, method=ALL, increment=True)
        if usage is None or not usage["should_limit"]:
            return True
        self.retry_after = int(usage["time_left"]) or 1
        return False

    def wait(self) -> float | None:
        return float(self.retry_after)
