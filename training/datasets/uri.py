"""A dataset's name in the protocol ultralytics speaks to a platform:
``ul://<owner's e-mail>/datasets/<dataset uid>``. ``yolo train data=<that>`` on a
user's own machine fetches the dataset from this site (``api/platform/``)."""

from __future__ import annotations

import uuid

from hubsite.models import User
from training.models import Dataset

SCHEME = "ul://"


def dataset_uri(dataset: Dataset) -> str:
    return f"{SCHEME}{dataset.owner.email}/datasets/{dataset.uid}"


def find_owned_dataset(owner: User, owner_part: str, slug: str) -> Dataset | None:
    """The dataset ``<owner_part>/datasets/<slug>`` names, if it is ``owner``'s own;
    any other owner, or a slug that is not one of their datasets, finds nothing."""
    if owner_part.strip().lower() != owner.email.lower():
        return None
    try:
        uid = uuid.UUID(slug)
    except ValueError:
        return None
    return Dataset.objects.filter(owner=owner, uid=uid).first()


def find_dataset_by_uri(owner: User, uri: str) -> Dataset | None:
    """The dataset a whole ``ul://`` URI names, if it is ``owner``'s own."""
    if not uri.startswith(SCHEME):
        return None
    parts = uri[len(SCHEME) :].split("/")
    if len(parts) != 3 or parts[1] != "datasets":
        return None
    return find_owned_dataset(owner, parts[0], parts[2])
