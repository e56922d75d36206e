"""The signed-in pages for API keys (session cookie and CSRF like every page)."""

from django.urls import URLPattern, URLResolver

app_name = "api_keys"
urlpatterns: list[URLPattern | URLResolver] = []
