"""A validation or weights check lost with its worker (or stopped by its time limit)
does not leave the dataset or upload "processing" forever: a periodic job marks it
invalid with a plain reason, and leaves recent ones alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from hubsite.models import User
from training.datasets.task import LOST_VALIDATION_AFTER, LOST_VALIDATION_MESSAGE, give_up_lost_validations
from training.models import Dataset, WeightsUpload
from training.weights.task import LOST_CHECK_AFTER, LOST_CHECK_MESSAGE, give_up_lost_checks

pytestmark = pytest.mark.django_db


def test_a_dataset_whose_validation_was_lost_becomes_invalid_saying_why(user: User) -> None:
    lost = Dataset.objects.create(owner=user, name="lost")
    waiting = Dataset.objects.create(owner=user, name="waiting")
    ready = Dataset.objects.create(owner=user, name="ready", status=Dataset.Status.READY)
    long_ago = timezone.now() - LOST_VALIDATION_AFTER - timedelta(minutes=1)
    Dataset.objects.filter(pk__in=[lost.pk, ready.pk]).update(updated_at=long_ago)

    assert give_up_lost_validations() == 1

    lost.refresh_from_db()
    assert lost.status == Dataset.Status.INVALID
    assert [error["message"] for error in lost.errors] == [LOST_VALIDATION_MESSAGE]
    assert Dataset.objects.get(pk=waiting.pk).status == Dataset.Status.PROCESSING
    assert Dataset.objects.get(pk=ready.pk).status == Dataset.Status.READY
    assert give_up_lost_validations() == 0


def test_an_upload_whose_check_was_lost_becomes_invalid_and_its_file_goes(user: User) -> None:
    lost = WeightsUpload.objects.create(owner=user, name="lost", file_name="lost.pt")
    lost.upload.name = default_storage.save(f"{lost.storage_prefix}/upload.pt", ContentFile(b"weights"))
    lost.save()
    waiting = WeightsUpload.objects.create(owner=user, name="waiting", file_name="waiting.pt")
    WeightsUpload.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - LOST_CHECK_AFTER - timedelta(minutes=1))
    stored = lost.upload.name

    assert give_up_lost_checks() == 1

    lost.refresh_from_db()
    assert lost.status == WeightsUpload.Status.INVALID
    assert lost.error == LOST_CHECK_MESSAGE
    assert not default_storage.exists(stored)
    assert WeightsUpload.objects.get(pk=waiting.pk).status == WeightsUpload.Status.PROCESSING
