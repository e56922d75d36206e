from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A personal API key. The key itself is shown once, when it is made; only its
    SHA-256 is stored (a random 256-bit key needs no slow hash) with its first
    characters, so a list of keys can say which is which."""

    class Scope(models.TextChoices):
        READ = "read", "Read: datasets, models, sessions, downloads"
        TRAIN = "train", "Train: upload, create, start, stop, remote training"
        BILLING = "billing", "Billing: balance, ledger and cost reports"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)  # the key's first characters, shown in lists
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The create form's one-time token: a reloaded or repeated POST finds this key
    # instead of making a second one (the key itself cannot be shown again).
    creation_token = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        indexes: ClassVar = [models.Index(fields=["owner", "-created_at"])]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["owner", "creation_token"], name="one_key_per_creation_token"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class StartRequestRecord(models.Model):
    """An ``Idempotency-Key`` a Start request came with, and what it did: a retried
    request with the same key gets the same session back instead of a second one."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the request's model and body
    session = models.ForeignKey("training.TrainingSession", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["owner", "idempotency_key"], name="one_start_per_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} → session {self.session_id}"
