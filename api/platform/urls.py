"""Paths fixed by ultralytics' client (they hang off ``ULTRALYTICS_PLATFORM_URL``)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
