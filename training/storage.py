"""What a user stores here (datasets and weights), measured against the plan's storage
quota (docs/plans.md, "Limits in training").

Counted: each dataset's archive, each uploaded weights file, and each checkpoint a
remote run uploaded. Trained weights and exports have no recorded size and are not
counted. Over the quota (after a downgrade) nothing is deleted: only new uploads are
refused, until the user deletes enough or upgrades.
"""

from __future__ import annotations

from django.db.models import Sum
from django.urls import reverse

from billing import services as billing
from billing.plans.standing import standing_of, storage_quota_bytes
from hubsite.models import User
from training.models import Dataset, RemoteUpload, WeightsUpload


class StorageQuotaExceeded(Exception):
    """An upload would pass the plan's storage quota; nothing was (or stays) stored."""

    def __init__(self, message: str, upgrade_url: str) -> None:
        super().__init__(message)
        self.message = message
        self.upgrade_url = upgrade_url


def stored_bytes(user: User) -> int:
    """Bytes the user keeps here, as recorded when each file was stored."""
    totals = (
        Dataset.objects.filter(owner=user).aggregate(total=Sum("archive_size")),
        WeightsUpload.objects.filter(owner=user).aggregate(total=Sum("size")),
        RemoteUpload.objects.filter(session__owner=user).aggregate(total=Sum("size")),
    )
    return sum(int(row["total"] or 0) for row in totals)


def storage_quota(user: User) -> int | None:
    """The plan's quota in bytes; None: unlimited (plans off, or a plan without one)."""
    return storage_quota_bytes(standing_of(billing.account_for(user)))


def check_storage(user: User, incoming_bytes: int) -> None:
    """Raise StorageQuotaExceeded when ``incoming_bytes`` more would pass the quota.

    Callers that store ask it twice: before storing (from the upload's declared size,
    so nothing is written in vain) and, with the file's stored size, under the account
    lock in the transaction that saves the row, so two uploads at once cannot both fit."""
    quota = storage_quota(user)
    if quota is None:
        return
    left = max(quota - stored_bytes(user), 0)
    if incoming_bytes > left:
        raise StorageQuotaExceeded(
            f"This upload needs {gigabytes(incoming_bytes)} but your plan's storage has {gigabytes(left)} left: "
            "delete datasets or weights, or upgrade.",
            reverse("plans:index"),
        )


def lock_and_check_storage(user: User, incoming_bytes: int) -> None:
    """``check_storage`` under the account's row lock; call inside ``transaction.atomic()``."""
    billing.lock_account(user.pk)
    check_storage(user, incoming_bytes)


def gigabytes(size: int) -> str:
    """Sizes as the quota message shows them: GB with one decimal, or MB, KB or bytes
    for what would read 0.0 GB."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale // 10:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
