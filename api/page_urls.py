"""The signed-in pages for API keys (session cookie and CSRF like every page)."""

from django.urls import URLPattern, URLResolver, path

from api import views

app_name = "api_keys"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.key_list, name="list"),
    path("new", views.key_create, name="create"),
    path("<int:key_id>/revoke", views.key_revoke, name="revoke"),
]
