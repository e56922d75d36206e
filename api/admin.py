"""Staff view of API keys: who has which, when used, revoked or not. Only a key's
SHA-256 and first characters are stored, so no page can show a key, and none sets
one (keys are made only by their owner, on the API keys page); staff may revoke."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from api.keys import revoke_key
from api.models import ApiKey

API_KEY_FIELDS = (
    "owner", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at", "key_hash",
)  # fmt: skip


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("owner", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("owner__email", "name", "prefix")
    fields = API_KEY_FIELDS
    readonly_fields = API_KEY_FIELDS
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        live = list(queryset.filter(revoked_at=None))
        for api_key in live:
            revoke_key(api_key)
        self.message_user(request, f"Revoked {len(live)} key(s).", messages.SUCCESS)
