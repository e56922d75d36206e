"""Fetching the key owner's objects by integer id: anyone else's, and ids no row can
have, are the same 404 as a missing one."""

from __future__ import annotations

from django.http import Http404

from hubsite.models import User
from training.models import Dataset, TrainingSession, YoloModel

MAX_ID = 2**63 - 1  # PostgreSQL's bigint; a larger id must not reach the database


def check_id(pk: int) -> int:
    if not 1 <= pk <= MAX_ID:
        raise Http404
    return pk


def owned_dataset(owner: User, pk: int) -> Dataset:
    dataset = Dataset.objects.select_related("owner").filter(owner=owner, pk=check_id(pk)).first()
    if dataset is None:
        raise Http404
    return dataset


def owned_model(owner: User, pk: int) -> YoloModel:
    model = YoloModel.objects.select_related("dataset").filter(owner=owner, pk=check_id(pk)).first()
    if model is None:
        raise Http404
    return model


def owned_session(owner: User, pk: int) -> TrainingSession:
    session = (
        TrainingSession.objects.select_related("model__dataset", "instance_type")
        .filter(owner=owner, pk=check_id(pk))
        .first()
    )
    if session is None:
        raise Http404
    return session
