"""The form that makes a personal API key (name and scopes); the key itself is made
by ``api.keys.create_key``."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings

from api.models import ApiKey
from hubsite.models import User


def key_limit_message(limit: int) -> str:
    return f"You already have {limit} API keys, the most one account may hold. Revoke one you no longer use first."


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. “CI pipeline” or “lab GPU”.")
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ],
        error_messages={"required": "Choose at least one scope."},
    )
    # New with every blank form: a second POST of the same form (a reload) makes no second key.
    creation_token = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4, required=False)

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name.")
        return name

    def already_created(self) -> ApiKey | None:
        """The key this very form made before (the page was reloaded), if any."""
        if self.cleaned_data.get("creation_token") is None:
            return None
        return ApiKey.objects.filter(owner=self.owner, creation_token=self.cleaned_data["creation_token"]).first()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.already_created() is not None:
            return cleaned
        limit: int = settings.API_KEYS_PER_USER
        if ApiKey.objects.filter(owner=self.owner, revoked_at=None).count() >= limit:
            raise forms.ValidationError(key_limit_message(limit), code="too_many_keys")
        return cleaned
