"""Uploaded weights: the list, upload (with its request-size guard), the page with
the check's result, and delete."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from hubsite.http import AuthenticatedRequest, owned_or_404
from training.datasets import human_bytes
from training.forms import WeightsUploadForm, WeightsUploadLimitHandler
from training.models import WeightsUpload
from training.storage import StorageQuotaExceeded
from training.weights import create_weights_upload, delete_weights_upload


@require_GET
def weights_list(request: AuthenticatedRequest) -> HttpResponse:
    uploads = WeightsUpload.objects.filter(owner=request.user)
    return render(request, "training/weights_list.html", {"uploads": uploads})


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; checked below
@require_http_methods(["GET", "POST"])
def weights_upload(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        handler = WeightsUploadLimitHandler.read_upload(request)
        if handler.exceeded:
            # Refused before CSRF is checked: nothing was read into storage and nothing changes.
            return _upload_form(request, WeightsUploadForm({}, {}, upload_exceeded=True), status=413)
    return _weights_upload(request)


@csrf_protect
def _weights_upload(request: AuthenticatedRequest) -> HttpResponse:
    if request.method != "POST":
        return render(request, "training/weights_upload.html", _upload_context(WeightsUploadForm()))
    form = WeightsUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _upload_form(request, form, status=400)
    upload = form.cleaned_data["file"]
    try:
        created = create_weights_upload(request.user, form.cleaned_data["name"], upload.name or "weights.pt", upload)
    except StorageQuotaExceeded as full:
        form.add_error(None, full.message)
        return _upload_form(request, form, status=413, upgrade_url=full.upgrade_url)
    url = reverse("training:weights_detail", args=[created.uid])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _upload_context(form: WeightsUploadForm) -> dict[str, Any]:
    return {"form": form, "upload_limit": human_bytes(settings.WEIGHTS_MAX_UPLOAD_BYTES)}


def _upload_form(
    request: AuthenticatedRequest, form: WeightsUploadForm, *, status: int, upgrade_url: str = ""
) -> HttpResponse:
    template = "training/weights_upload.html#upload-form" if request.htmx else "training/weights_upload.html"
    return render(request, template, {**_upload_context(form), "upgrade_url": upgrade_url}, status=status)


@require_GET
def weights_detail(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    upload = owned_or_404(WeightsUpload, request, uid=uid)
    context = {"upload": upload}
    if request.htmx:
        response = render(request, "training/weights_detail.html#weights-body", context)
        if upload.status != WeightsUpload.Status.PROCESSING:
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "training/weights_detail.html", context)


@require_POST
def weights_delete(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    upload = owned_or_404(WeightsUpload, request, uid=uid)
    delete_weights_upload(upload)
    messages.success(request, f"Deleted {upload.name}. Models started from it keep their own copy.")
    return redirect("training:weights_list")
