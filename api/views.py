"""The API keys pages: list, create (the key shown once), revoke. Signed-in pages
with the session cookie and CSRF like every other page; they never accept a key."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from api.forms import ApiKeyCreateForm
from api.keys import create_key, live_keys, revoke_key
from api.models import ApiKey
from hubsite.http import AuthenticatedRequest, owned_or_404
from hubsite.models import User


def _list_page(request: AuthenticatedRequest, form: ApiKeyCreateForm, *, status: int = 200) -> HttpResponse:
    context = {
        "keys": live_keys(request.user),
        "form": form,
        "key_limit": settings.API_KEYS_PER_USER,
        "site_url": settings.SITE_URL,
    }
    return render(request, "api/key_list.html", context, status=status)


@require_GET
def key_list(request: AuthenticatedRequest) -> HttpResponse:
    return _list_page(request, ApiKeyCreateForm(owner=request.user))


@require_POST
def key_create(request: AuthenticatedRequest) -> HttpResponse:
    """Make the key and show it on this response only: it is not stored, so the page
    cannot be reloaded or cached to show it again."""
    with transaction.atomic():
        # One creation at a time per user, so two at once cannot both pass the key limit.
        User.objects.select_for_update().get(pk=request.user.pk)
        form = ApiKeyCreateForm(request.POST, owner=request.user)
        if not form.is_valid():
            return _list_page(request, form, status=400)
        existing = form.already_created()
        if existing is not None:
            context = {"api_key": existing, "key": None, "site_url": settings.SITE_URL}
            return render(request, "api/key_created.html", context)
        api_key, key = create_key(
            request.user,
            form.cleaned_data["name"],
            form.cleaned_data["scopes"],
            creation_token=form.cleaned_data["creation_token"],
        )
    response = render(request, "api/key_created.html", {"api_key": api_key, "key": key, "site_url": settings.SITE_URL})
    add_never_cache_headers(response)
    return response


@require_http_methods(["GET", "POST"])
def key_revoke(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    """GET asks to confirm; POST revokes. Another user's key, or a revoked one, is a 404."""
    api_key = owned_or_404(ApiKey.objects.filter(revoked_at=None), request, pk=key_id)
    if request.method == "POST":
        revoke_key(api_key)
        messages.success(request, f"Revoked the key “{api_key.name}” ({api_key.prefix}…). It no longer works.")
        return redirect("api_keys:list")
    return render(request, "api/key_revoke.html", {"api_key": api_key})
