"""Keys and clients for the API tests: ``api_client`` sends the owner's key (all
scopes), ``outsider_api_client`` another user's."""

from __future__ import annotations

import pytest
from django.test import Client

from api.keys import ALL_SCOPES, create_key
from hubsite.models import User


class KeyClient(Client):
    """A test client that sends ``Authorization: Bearer <key>`` on every request."""

    def __init__(self, key: str) -> None:
        super().__init__(HTTP_AUTHORIZATION=f"Bearer {key}")
        self.key = key


def key_client(owner: User, *scopes: str) -> KeyClient:
    _, key = create_key(owner, "test key", scopes or ALL_SCOPES)
    return KeyClient(key)


@pytest.fixture
def api_client(user: User) -> KeyClient:
    return key_client(user)


@pytest.fixture
def outsider_api_client(outsider: User) -> KeyClient:
    return key_client(outsider)
