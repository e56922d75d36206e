"""Everything under ``/api/``. No page here takes a session cookie, so none needs
``LoginRequiredMiddleware``: each authenticates its own way (an API key, or a
signed URL) and says so in its own error shape."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, include, path

from api.platform import urls as platform_urls
from api.v1 import api


def _without_login(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _without_login(pattern.url_patterns)
        else:
            pattern.callback = login_not_required(pattern.callback)
    return patterns


v1_patterns, v1_app, v1_namespace = api.urls
urlpatterns = [
    path("v1/", include((_without_login(v1_patterns), v1_app), namespace=v1_namespace)),
    path("", include(_without_login(platform_urls.urlpatterns))),
]
