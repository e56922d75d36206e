"""Making, finding and revoking personal API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from api.models import ApiKey
from hubsite.models import User

KEY_PREFIX = "hub_"
ALL_SCOPES = tuple(ApiKey.Scope.values)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    owner: User, name: str, scopes: Iterable[str], *, creation_token: uuid.UUID | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``owner``; the second value is the key itself, never stored."""
    chosen = [scope for scope in ALL_SCOPES if scope in set(scopes)]
    if not chosen:
        raise ValueError("A key needs at least one scope.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        owner=owner,
        name=name.strip()[:100],
        prefix=key[:12],
        key_hash=hash_key(key),
        scopes=chosen,
        creation_token=creation_token,
    )
    return api_key, key


def revoke_key(api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at=None).update(revoked_at=timezone.now())


def find_key(key: str) -> ApiKey | None:
    """The live key ``key`` is, with its owner, or None. The last-used time is
    written at most once a minute, so a busy script does not write on every call."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    api_key = (
        ApiKey.objects.select_related("owner")
        .filter(key_hash=hash_key(key), revoked_at=None, owner__is_active=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    stale = now - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or api_key.last_used_at < stale:
        ApiKey.objects.filter(pk=api_key.pk).filter(Q(last_used_at=None) | Q(last_used_at__lt=stale)).update(
            last_used_at=now
        )
        api_key.last_used_at = now
    return api_key


def live_keys(owner: User) -> list[ApiKey]:
    return list(ApiKey.objects.filter(owner=owner, revoked_at=None).order_by(F("created_at").desc()))
