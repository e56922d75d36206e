"""The API keys pages: a key shown once and stored hashed, revoked with a confirmed
POST, another user's key a 404, CSRF on every form, a limit per user."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from api.keys import create_key, hash_key
from api.models import ApiKey
from hubsite.models import User
from tests.api.conftest import KeyClient

pytestmark = pytest.mark.django_db

KEY = re.compile(r'value="(hub_[A-Za-z0-9_-]+)"')


def _create(client: Client, name: str = "ci", scopes: tuple[str, ...] = ("read", "train")) -> str:
    response = client.post("/account/api-keys/new", {"name": name, "scopes": list(scopes)})
    assert response.status_code == 200, response.content.decode()[:2000]
    found = KEY.search(response.content.decode())
    assert found is not None
    return found.group(1)


def test_the_page_explains_keys_and_remote_training(owner_client: Client) -> None:
    page = owner_client.get("/account/api-keys/").content.decode()
    assert 'href="/api/v1/docs"' in page
    assert "ULTRALYTICS_API_KEY=&lt;key&gt; ULTRALYTICS_PLATFORM_URL=" in page
    assert "project=&lt;name&gt;" in page
    assert 'href="/account/api-keys/"' in page  # the site navigation


def test_a_new_key_is_shown_once_and_stored_only_as_a_hash(owner_client: Client, user: User) -> None:
    key = _create(owner_client, "ci pipeline")

    stored = ApiKey.objects.get(owner=user)
    assert (stored.name, stored.scopes, stored.key_hash) == ("ci pipeline", ["read", "train"], hash_key(key))
    assert key not in {stored.prefix, stored.key_hash, str(stored.scopes)}
    assert key.startswith(stored.prefix)
    listing = owner_client.get("/account/api-keys/").content.decode()
    assert key not in listing
    assert f"{stored.prefix}…" in listing
    assert "never" in listing  # not used yet
    assert KeyClient(key).get("/api/v1/me").status_code == 200


def test_reloading_the_new_key_page_makes_no_second_key(owner_client: Client, user: User) -> None:
    form_page = owner_client.get("/account/api-keys/").content.decode()
    token = re.search(r'name="creation_token" value="([0-9a-f-]{36})"', form_page)
    assert token is not None
    data = {"name": "ci", "scopes": ["read"], "creation_token": token.group(1)}
    first = owner_client.post("/account/api-keys/new", data)
    assert KEY.search(first.content.decode()) is not None

    again = owner_client.post("/account/api-keys/new", data)  # the browser's "resend the form?"

    page = again.content.decode()
    assert again.status_code == 200
    assert KEY.search(page) is None
    assert "No second key was made" in page
    assert ApiKey.objects.filter(owner=user).count() == 1
    fresh = re.search(
        r'name="creation_token" value="([0-9a-f-]{36})"', owner_client.get("/account/api-keys/").content.decode()
    )
    assert fresh is not None
    assert fresh.group(1) != token.group(1)


def test_the_key_page_is_never_cached_and_warns(owner_client: Client) -> None:
    response = owner_client.post("/account/api-keys/new", {"name": "ci", "scopes": ["read"]})
    assert "no-store" in response["Cache-Control"]
    assert "will not be shown again" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "error"),
    [({"name": "ci"}, "Choose at least one scope."), ({"name": "  ", "scopes": ["read"]}, "This field is required")],
)
def test_a_key_needs_a_name_and_a_scope(owner_client: Client, data: dict[str, object], error: str) -> None:
    response = owner_client.post("/account/api-keys/new", data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not ApiKey.objects.exists()


def test_an_unknown_scope_is_refused(owner_client: Client) -> None:
    response = owner_client.post("/account/api-keys/new", {"name": "ci", "scopes": ["admin"]})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_live_keys_per_user_are_limited(owner_client: Client, user: User, settings: SettingsWrapper) -> None:
    settings.API_KEYS_PER_USER = 2
    _create(owner_client, "one")
    _create(owner_client, "two")
    refused = owner_client.post("/account/api-keys/new", {"name": "three", "scopes": ["read"]})
    assert refused.status_code == 400
    assert "You already have 2 API keys" in refused.content.decode()
    assert ApiKey.objects.filter(owner=user).count() == 2
    owner_client.post(f"/account/api-keys/{ApiKey.objects.filter(owner=user).first().pk}/revoke")  # type: ignore[union-attr]
    _create(owner_client, "three")  # a revoked key frees its place


def test_revoking_asks_first_then_the_key_gets_401(owner_client: Client, user: User) -> None:
    key = _create(owner_client)
    api_key = ApiKey.objects.get(owner=user)

    confirm = owner_client.get(f"/account/api-keys/{api_key.pk}/revoke")
    assert confirm.status_code == 200
    assert "Revoke key" in confirm.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is None  # a GET changes nothing

    response = owner_client.post(f"/account/api-keys/{api_key.pk}/revoke", follow=True)
    assert response.status_code == 200
    assert "Revoked the key" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    answer = KeyClient(key).get("/api/v1/me")
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    assert owner_client.post(f"/account/api-keys/{api_key.pk}/revoke").status_code == 404  # already revoked


def test_another_users_key_is_a_404(outsider_client: Client, user: User) -> None:
    api_key, key = create_key(user, "mine", ["read"])
    assert outsider_client.get(f"/account/api-keys/{api_key.pk}/revoke").status_code == 404
    assert outsider_client.post(f"/account/api-keys/{api_key.pk}/revoke").status_code == 404
    assert outsider_client.post("/account/api-keys/999999/revoke").status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert "mine" not in outsider_client.get("/account/api-keys/").content.decode()
    assert KeyClient(key).get("/api/v1/me").status_code == 200


def test_a_post_without_csrf_token_is_refused(user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    api_key, _ = create_key(user, "mine", ["read"])

    assert client.post("/account/api-keys/new", {"name": "ci", "scopes": ["read"]}).status_code == 403
    assert client.post(f"/account/api-keys/{api_key.pk}/revoke").status_code == 403

    assert ApiKey.objects.filter(owner=user).count() == 1
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_the_pages_need_a_signed_in_user_not_a_key(user: User) -> None:
    _, key = create_key(user, "mine", ["read", "train", "billing"])
    response = KeyClient(key).get("/account/api-keys/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_staff_see_keys_but_never_a_key_and_can_revoke(staff_client: Client, user: User) -> None:
    api_key, key = create_key(user, "mine", ["read"])
    listing = staff_client.get("/admin/api/apikey/").content.decode()
    assert api_key.prefix in listing
    assert key not in listing
    change = staff_client.get(f"/admin/api/apikey/{api_key.pk}/change/").content.decode()
    assert api_key.key_hash in change  # read-only
    assert 'name="key_hash"' not in change
    assert staff_client.get("/admin/api/apikey/add/").status_code == 403

    staff_client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert KeyClient(key).get("/api/v1/me").status_code == 401
