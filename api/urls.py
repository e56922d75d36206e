"""Everything under ``/api/``. No page here takes a session cookie, so none needs
``LoginRequiredMiddleware``: each authenticates its own way (an API key, or a
signed URL) and answers errors in the API's JSON shape, a wrong method included."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import URLPattern, URLResolver, include, path, reverse

from api.platform import urls as platform_urls
from api.v1 import api


def _json_method_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = response["Allow"]
        refused = JsonResponse(
            {"code": "method_not_allowed", "message": f"{request.method} is not allowed here; use {allowed}."},
            status=405,
        )
        refused["Allow"] = allowed
        return refused

    return wrapped


def _index(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """``/api/v1/``: where the docs and the schema are (ninja's own root is an HTML 404)."""
    return JsonResponse(
        {
            "docs": request.build_absolute_uri(reverse("api-v1:openapi-view")),
            "openapi": request.build_absolute_uri(reverse("api-v1:openapi-json")),
        }
    )


def _api_views(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _api_views(pattern.url_patterns)
            continue
        view = _index if pattern.name == "api-root" else pattern.callback
        pattern.callback = login_not_required(_json_method_not_allowed(view))
    return patterns


v1_patterns, v1_app, v1_namespace = api.urls
urlpatterns = [
    path("v1/", include((_api_views(v1_patterns), v1_app), namespace=v1_namespace)),
    path("", include(_api_views(platform_urls.urlpatterns))),
]
