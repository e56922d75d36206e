"""``ul://`` datasets for ultralytics on a user's own machine (docs/api.md).

``yolo train data=ul://<e-mail>/datasets/<uid>`` with ``ULTRALYTICS_API_KEY`` asks
``GET /api/datasets/<e-mail>/<uid>/export`` (a personal key, scope read) for a
download URL; that URL serves the dataset's NDJSON, whose lines name one URL per image.
Both are signed (``django.core.signing``, a salt of their own, expiring after
``PLATFORM_DATASET_URL_SECONDS``) and bound to the dataset, its stored zip and, for
an image, its index: the URLs need no key, and a token for anything else reads nothing.

Errors are JSON in the shape ultralytics' client reads (``error``) and ours (``code``,
``message``)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from api.platform.protocol import error, key_owner, refusal
from training.datasets.ndjson import archive_version, image_bytes, ndjson_lines
from training.datasets.uri import find_owned_dataset
from training.models import Dataset
from training.remote.errors import RemoteRefused

NDJSON_SALT = "api.platform.datasets.ndjson"
IMAGE_SALT = "api.platform.datasets.image"
NOT_FOUND = "No such dataset, or it is not yours."


@require_GET
def export(request: HttpRequest, owner: str, slug: str) -> HttpResponseBase:
    """``{"downloadUrl": ...}``: the signed URL of the dataset's NDJSON."""
    try:
        requester = key_owner(request, "read")
    except RemoteRefused as refused:
        return refusal(refused)
    dataset = find_owned_dataset(requester, owner, slug)
    if dataset is None:
        return error(404, "not_found", NOT_FOUND)
    if dataset.status != Dataset.Status.READY or not dataset.archive.name:
        return error(
            409,
            "dataset_not_ready",
            f"The dataset is {dataset.get_status_display().lower()}, not ready: only a validated dataset can be "
            "trained on.",
        )
    version = archive_version(dataset)
    token = _sign(NDJSON_SALT, dataset, version)
    path = reverse("platform-dataset-ndjson", kwargs={"uid": dataset.uid, "version": version})
    return JsonResponse({"downloadUrl": request.build_absolute_uri(f"{path}?token={token}")})


@require_GET
def ndjson(request: HttpRequest, uid: uuid.UUID, version: str) -> HttpResponseBase:
    """The dataset's NDJSON, streamed, each image's URL signed for that image."""
    refused = _refusal(request, NDJSON_SALT, uid, version)
    if refused is not None:
        return refused
    dataset = _current_dataset(uid, version)
    if dataset is None:
        return error(404, "not_found", NOT_FOUND)

    def image_url(index: int) -> str:
        path = reverse("platform-dataset-image", kwargs={"uid": uid, "version": version, "index": index})
        return request.build_absolute_uri(f"{path}?token={_sign(IMAGE_SALT, dataset, version, index)}")

    response = StreamingHttpResponse(
        (line.encode() for line in ndjson_lines(dataset, image_url)), content_type="application/x-ndjson"
    )
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def image(request: HttpRequest, uid: uuid.UUID, version: str, index: int) -> HttpResponseBase:
    """One image of the dataset, streamed from its stored zip."""
    refused = _refusal(request, IMAGE_SALT, uid, version, index)
    if refused is not None:
        return refused
    dataset = _current_dataset(uid, version)
    found = image_bytes(dataset, index) if dataset is not None else None
    if found is None:
        return error(404, "not_found", "No such image.")
    content_type, chunks = found
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _sign(salt: str, dataset: Dataset, version: str, index: int | None = None) -> str:
    payload: dict[str, Any] = {"d": str(dataset.uid), "v": version}
    if index is not None:
        payload["i"] = index
    return signing.dumps(payload, salt=salt, compress=False)


def _refusal(
    request: HttpRequest, salt: str, uid: uuid.UUID, version: str, index: int | None = None
) -> JsonResponse | None:
    """None when the request's token was signed for exactly this URL and has not expired."""
    try:
        payload = signing.loads(request.GET.get("token", ""), salt=salt, max_age=settings.PLATFORM_DATASET_URL_SECONDS)
    except signing.SignatureExpired:
        return error(403, "url_expired", "This download URL has expired: ask for a new one (run the command again).")
    except signing.BadSignature:
        return error(403, "bad_signature", "This download URL is not valid.")
    expected: dict[str, Any] = {"d": str(uid), "v": version}
    if index is not None:
        expected["i"] = index
    if payload != expected:
        return error(403, "bad_signature", "This download URL is not valid.")
    return None


def _current_dataset(uid: uuid.UUID, version: str) -> Dataset | None:
    """The dataset, if it is still ready with the zip the URL was signed for."""
    dataset = Dataset.objects.filter(uid=uid, status=Dataset.Status.READY).first()
    if dataset is None or not dataset.archive.name or archive_version(dataset) != version:
        return None
    return dataset
