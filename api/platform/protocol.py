"""What every endpoint of the platform protocol shares: the key check (with the
per-key rate limit the REST API uses) and the error body, which carries ``error``
because ultralytics' client reads that, beside our ``code`` and ``message``.

A 401 makes the client stop sending for the rest of a run, so it is only for a
missing, revoked or unknown key."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from api.keys import find_key
from api.throttle import PerKeyThrottle
from hubsite.models import User
from training.remote.errors import RemoteRefused


def refusal(refused: RemoteRefused) -> JsonResponse:
    response = JsonResponse(
        {"error": refused.message, "code": refused.code, "message": refused.message}, status=refused.status
    )
    if refused.status == 401:
        response["WWW-Authenticate"] = "Bearer"
    if refused.retry_after is not None:
        response["Retry-After"] = str(refused.retry_after)
    return response


def error(status: int, code: str, message: str) -> JsonResponse:
    return refusal(RemoteRefused(status, code, message))


def key_owner(request: HttpRequest, scope: str) -> User:
    """The owner of the request's live key with ``scope``; refused otherwise, or when
    the key is over its rate limit."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    api_key = find_key(token.strip()) if scheme.lower() == "bearer" else None
    if api_key is None:
        raise RemoteRefused(401, "unauthenticated", "Send a live API key as 'Authorization: Bearer <key>'.")
    if not api_key.allows(scope):
        raise RemoteRefused(403, "scope_missing", f"This key lacks the '{scope}' scope.")
    request.auth = api_key  # type: ignore[attr-defined]  # what the per-key rate limit counts
    throttle = PerKeyThrottle()
    if not throttle.allow_request(request):
        wait = int(throttle.wait() or 1)
        raise RemoteRefused(
            429, "rate_limited", f"Too many requests with this key; retry in {wait} s.", retry_after=wait
        )
    return api_key.owner
