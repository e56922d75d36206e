"""Bearer-key authentication for the API. A key only ever works here: pages and the
admin authenticate by session cookie and never read the Authorization header, and the
API never reads the session cookie (so it needs no CSRF token)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from api.errors import ApiError
from api.keys import find_key
from api.models import ApiKey
from hubsite.models import User


class KeyAuth(HttpBearer):
    """A live key with ``scope``; ``request.auth`` becomes the key."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        api_key = find_key(token)
        if api_key is None:
            return None
        if not api_key.allows(self.scope):
            raise ApiError(403, "scope_missing", f"This key lacks the '{self.scope}' scope.")
        return api_key


READ = KeyAuth("read")
TRAIN = KeyAuth("train")
BILLING = KeyAuth("billing")


def key_of(request: HttpRequest) -> ApiKey:
    """The key that authenticated ``request`` (ninja sets ``request.auth``)."""
    api_key = getattr(request, "auth", None)
    if not isinstance(api_key, ApiKey):
        raise TypeError("the endpoint was reached without KeyAuth")
    return api_key


def owner_of(request: HttpRequest) -> User:
    """The user whose key authenticated ``request``: every lookup is scoped to them."""
    return key_of(request).owner
