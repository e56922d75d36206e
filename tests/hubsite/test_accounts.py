from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from hubsite.models import User
from tests.factories import PASSWORD

PUBLIC_URL_NAMES = {
    "landing",
    "healthz",
    "signup",
    "login",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "stripe:webhook",  # Stripe's servers call it; its signature is the authentication
}
NOT_PAGES = {"password_reset_confirm", "stripe:webhook"}


def test_sign_up_creates_the_account_and_logs_in(client: Client, db: None) -> None:
    response = client.post(
        reverse("signup"), {"email": "New@Example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("training:home")
    user = User.objects.get()
    assert user.email == "new@example.com"
    assert client.get(reverse("training:home")).context["user"] == user


def test_sign_up_rejects_a_taken_email_with_a_message(client: Client, user: User) -> None:
    response = client.post(
        reverse("signup"), {"email": user.email.upper(), "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_sign_up_rejects_a_weak_password(client: Client, db: None) -> None:
    response = client.post(reverse("signup"), {"email": "a@example.com", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not User.objects.exists()


def test_login_with_email_and_password(client: Client, user: User) -> None:
    response = client.post(reverse("login"), {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("training:home")
    assert client.get(reverse("training:home")).status_code == 200


def test_login_rejects_a_wrong_password(client: Client, user: User) -> None:
    response = client.post(reverse("login"), {"username": user.email, "password": "nope"})
    assert response.status_code == 200
    assert "correct" in response.content.decode()
    assert client.get(reverse("training:home")).status_code == 302


def test_logout_is_a_post(owner_client: Client) -> None:
    assert owner_client.get(reverse("logout")).status_code == 405
    response = owner_client.post(reverse("logout"))
    assert response.status_code == 302
    assert owner_client.get(reverse("training:home")).status_code == 302


def test_password_reset_sends_a_link_that_sets_a_new_password(client: Client, user: User) -> None:
    response = client.post(reverse("password_reset"), {"email": user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+/accounts/reset/\S+/", str(mail.outbox[0].body))
    assert link is not None
    path = link.group(0).split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.context["validlink"] is True
    new_password = "a-brand-new-passphrase-42"
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)


def test_password_reset_for_an_unknown_email_sends_nothing(client: Client, db: None) -> None:
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


def _named_patterns(resolver: URLResolver, namespace: str = "") -> list[tuple[str, URLPattern]]:
    found: list[tuple[str, URLPattern]] = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # the admin has its own login, tested below
            prefix = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found.extend(_named_patterns(entry, prefix))
        elif entry.name:
            found.append((f"{namespace}{entry.name}", entry))
    return found


def _dummy_kwargs(pattern: URLPattern) -> dict[str, object]:
    converters = getattr(pattern.pattern, "converters", {})
    values = {"int": 1, "uuid": "00000000-0000-0000-0000-000000000001", "slug": "x", "str": "x", "path": "x"}
    return {
        name: values.get(type(converter).__name__.replace("Converter", "").lower(), "x")
        for name, converter in converters.items()
    }


# The API's index, schema and docs page, open to all.
API_DOCS = {"api-v1:api-root", "api-v1:openapi-json", "api-v1:openapi-view"}


def _urls() -> list[tuple[str, str]]:
    return [(name, reverse(name, kwargs=_dummy_kwargs(pattern))) for name, pattern in _named_patterns(get_resolver())]


def test_every_private_page_redirects_anonymous_users_to_login(client: Client, db: None) -> None:
    private = [(name, url) for name, url in _urls() if name not in PUBLIC_URL_NAMES and not url.startswith("/api/")]
    assert len(private) >= 3  # home, logout, password change at least
    for name, url in private:
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name


def test_every_api_url_refuses_anonymous_users_in_json(client: Client, db: None) -> None:
    """The API and the platform protocol authenticate by key or signed URL, never by
    the session: without either they answer a JSON error, never a page or a redirect."""
    doors = [(name, url) for name, url in _urls() if url.startswith("/api/") and name not in API_DOCS]
    assert len(doors) >= 20
    for name, url in doors:
        response = client.get(url)
        assert response.status_code in (401, 403, 404, 405), name
        assert response["Content-Type"].startswith("application/json"), name
        assert response.json()["code"], name


@pytest.mark.parametrize("name", sorted(API_DOCS))
def test_the_api_docs_are_open(client: Client, db: None, name: str) -> None:
    assert client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", sorted(PUBLIC_URL_NAMES - NOT_PAGES))
def test_public_pages_are_open(client: Client, db: None, name: str) -> None:
    assert client.get(reverse(name)).status_code == 200


def test_admin_is_for_staff_only(client: Client, user: User) -> None:
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    user.is_staff = True
    user.save()
    assert client.get("/admin/").status_code == 200


def test_csrf_is_enforced_on_posts(user: User) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("login"), {"username": user.email, "password": PASSWORD})
    assert response.status_code == 403
    strict.force_login(user)
    assert strict.post(reverse("logout")).status_code == 403


def test_an_htmx_post_passes_csrf_with_the_token_from_hx_headers(user: User) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    page = strict.get(reverse("training:home")).content.decode()
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page)
    assert token is not None
    assert strict.post(reverse("logout"), headers={"HX-Request": "true"}).status_code == 403
    response = strict.post(reverse("logout"), headers={"HX-Request": "true", "X-CSRFToken": token.group(1)})
    assert response.status_code == 302


def test_htmx_is_served_locally_not_from_a_cdn(owner_client: Client) -> None:
    page = owner_client.get(reverse("training:home")).content.decode()
    script = re.search(r'<script src="([^"]*htmx[^"]*)"', page)
    assert script is not None
    assert script.group(1).startswith("/static/")
    assert "//" not in script.group(1)
