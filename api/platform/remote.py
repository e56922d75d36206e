"""The server side of ultralytics' platform callbacks (remote training): the paths the
client posts to, authenticated by a personal API key with the ``train`` scope, errors in
the protocol's shape (``protocol.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from api.platform.protocol import error, key_owner, refusal
from hubsite.models import User
from training.models import TrainingSession
from training.remote import console, runs, uploads
from training.remote.errors import RemoteRefused

EVENTS = frozenset(
    {
        "training_started",
        "training_progress",
        "epoch_end",
        "system_metrics",
        "console_output",
        "checkpoint_saved",
        "training_complete",
        "training_failed",
    }
)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except RequestDataTooBig as error:
        raise RemoteRefused(413, "too_large", "The request body is too large.") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise RemoteRefused(400, "invalid_json", "The body is not JSON.") from error
    if not isinstance(body, dict):
        raise RemoteRefused(400, "invalid", "The body must be a JSON object.")
    return body


def _text(body: dict[str, Any], key: str, *, max_length: int = 200) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise RemoteRefused(400, "invalid", f"{key} must be text of at most {max_length} characters.")
    return value


def _protocol(view: Callable[[HttpRequest], dict[str, Any]]) -> Callable[[HttpRequest], JsonResponse]:
    def wrapped(request: HttpRequest) -> JsonResponse:
        try:
            return JsonResponse(view(request))
        except RemoteRefused as refused:
            return refusal(refused)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return csrf_exempt(require_POST(wrapped))


@_protocol
def training_metrics(request: HttpRequest) -> dict[str, Any]:
    """``POST /api/webhooks/training/metrics``: one training event."""
    owner = key_owner(request, "train")
    body = _json_body(request)
    event, data = body.get("event"), body.get("data")
    if event not in EVENTS:
        raise RemoteRefused(400, "unknown_event", f"Unknown event; expected one of {', '.join(sorted(EVENTS))}.")
    if not isinstance(data, dict):
        raise RemoteRefused(400, "invalid", "data must be an object.")
    model_uid = _text(body, "modelId")
    if event == "training_started":
        return _started(request, owner, body, data, model_uid)
    if model_uid is None:
        raise RemoteRefused(400, "invalid", "modelId is required after training_started.")
    model = runs.find_model(owner, model_uid)
    session = runs.find_session(model, data.get("runId"))
    _handle(event, session, data)
    runs.touch(session)
    return {"cancelled": runs.cancelled(session)}


def _started(
    request: HttpRequest, owner: User, body: dict[str, Any], data: dict[str, Any], model_uid: str | None
) -> dict[str, Any]:
    project = _text(body, "project") or ""
    name = _text(body, "name") or "train"
    session = runs.start_run(owner, data, project, name, model_uid)
    model_url = request.build_absolute_uri(reverse("training:train_page", args=[session.model.uid]))
    return {"modelId": str(session.model.uid), "runId": session.pk, "modelUrl": model_url, "cancelled": False}


def _handle(event: str, session: TrainingSession, data: dict[str, Any]) -> None:
    if event == "epoch_end":
        runs.record_epoch(session, data)
    elif event == "console_output":
        chunk_id, content = data.get("chunkId"), data.get("content")
        if not isinstance(chunk_id, int) or isinstance(chunk_id, bool) or not 0 <= chunk_id < 2**62:
            raise RemoteRefused(400, "invalid", "data.chunkId must be a whole number from 0.")
        if not isinstance(content, str):
            raise RemoteRefused(400, "invalid", "data.content must be text.")
        console.add_chunk(session.pk, chunk_id, content)
    elif event == "checkpoint_saved":
        uploads.request_check(session, data.get("modelPath"))
    elif event == "training_complete":
        results = data.get("results")
        if results is not None and not isinstance(results, dict):
            raise RemoteRefused(400, "invalid", "data.results must be an object.")
        with transaction.atomic():
            if isinstance(results, dict):
                uploads.request_check(session, results.get("modelPath"))
            runs.complete_run(session, data)
    elif event == "training_failed":
        runs.fail_run(session, data)
    # training_progress and system_metrics only refresh the heartbeat (the caller does).


@_protocol
def model_upload(request: HttpRequest) -> dict[str, Any]:
    """``POST /api/webhooks/models/upload``: a signed URL to PUT one checkpoint to."""
    owner = key_owner(request, "train")
    body = _json_body(request)
    model_uid = _text(body, "modelId")
    file_name = _text(body, "filename", max_length=255)
    if model_uid is None or file_name is None or body.get("runId") is None:
        raise RemoteRefused(400, "invalid", "filename, modelId and runId are required.")
    session = runs.find_session(runs.find_model(owner, model_uid), body.get("runId"))
    upload, token = uploads.stage_upload(session, file_name, body.get("size"))
    url = request.build_absolute_uri(reverse("platform_upload_put", args=[token]))
    return {"uploadUrl": url, "gcsPath": str(upload.uid), "uploadPath": str(upload.uid)}


@csrf_exempt
def upload_put(request: HttpRequest, token: str) -> JsonResponse:
    """``PUT`` of the checkpoint's bytes to the signed URL (no key: the URL is the proof)."""
    if request.method != "PUT":
        return error(405, "method_not_allowed", "PUT the file's bytes to this URL.")
    try:
        upload = uploads.upload_for_token(token)
        length_header = request.headers.get("Content-Length", "")
        if not length_header.isdigit():
            raise RemoteRefused(411, "length_required", "Send the file with a Content-Length.")
        uploads.receive(upload, request, int(length_header))
    except RemoteRefused as refused:
        return refusal(refused)
    return JsonResponse({"received": True})
