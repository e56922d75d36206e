"""Keys: bearer only, scoped, revocable, never a cookie; errors in the API's shape."""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from api.keys import create_key, find_key, revoke_key
from api.models import ApiKey
from hubsite.models import User
from tests.api.conftest import KeyClient, key_client

pytestmark = pytest.mark.django_db


def test_a_key_says_whose_it_is(api_client: KeyClient, user: User) -> None:
    response = api_client.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json() == {"email": user.email, "key_name": "test key", "scopes": ["read", "train", "billing"]}


def test_the_key_is_stored_only_as_a_hash(user: User) -> None:
    api_key, key = create_key(user, "ci", ["read"])
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert key not in (stored.key_hash, stored.prefix)
    assert key.startswith(stored.prefix)
    assert find_key(key) == stored


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer hub_not-a-key", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000],
)
def test_no_live_key_is_a_json_401(header: str) -> None:
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_revoked_key_stops_working(user: User) -> None:
    api_key, key = create_key(user, "old", ["read"])
    revoke_key(api_key)
    assert KeyClient(key).get("/api/v1/me").status_code == 401


def test_a_signed_in_browser_is_not_an_api_client(owner_client: Client) -> None:
    assert owner_client.get("/api/v1/me").status_code == 401


def test_a_key_does_not_sign_in_to_pages_or_the_admin(staff: User) -> None:
    client = key_client(staff)
    assert client.get("/datasets/").status_code == 302  # to the login page
    assert client.get("/admin/").status_code == 302


def test_a_key_without_the_scope_is_refused(user: User) -> None:
    client = key_client(user, "billing")
    response = client.get("/api/v1/me")
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"


def test_requests_per_key_are_limited(user: User, settings: SettingsWrapper, redis_client: object) -> None:
    settings.API_REQUESTS_PER_MINUTE_PER_KEY = 3
    client, other = key_client(user), key_client(user)
    assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/me")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert other.get("/api/v1/me").status_code == 200  # counted per key


def test_the_docs_and_schema_are_served_without_a_key() -> None:
    client = Client()
    assert client.get("/api/v1/docs").status_code == 200
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/me" in schema["paths"]
