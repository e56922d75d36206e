"""What every signed-in view works with: the request type, and the one way to
fetch an object that belongs to the user (anyone else's is a 404, never a 403, so
ids reveal nothing)."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django_htmx.middleware import HtmxDetails

from hubsite.models import User

M = TypeVar("M", bound=Model)


class AuthenticatedRequest(HttpRequest):
    """A request that passed the login requirement (``LoginRequiredMiddleware``
    guards every view not marked ``login_not_required``), with django-htmx's details."""

    user: User
    htmx: HtmxDetails


def owned_or_404(
    objects: type[M] | QuerySet[M], request: AuthenticatedRequest, *, owner_field: str = "owner", **lookup: object
) -> M:
    """The object matching ``lookup`` if the signed-in user owns it, else 404."""
    return get_object_or_404(objects, **{owner_field: request.user}, **lookup)
