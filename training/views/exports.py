"""A model's exports (ONNX, TorchScript, OpenVINO, NCNN, CoreML): asking for one, and
downloading it."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from hubsite.http import AuthenticatedRequest
from training.exports import ExportRefused, download_ending, request_export
from training.filenames import download_filename
from training.models import Export
from training.views.downloads import stream_file
from training.views.models import model_or_404


@require_POST
def export(request: AuthenticatedRequest, uid: uuid.UUID, export_format: str) -> HttpResponse:
    model = model_or_404(request, uid)
    try:
        request_export(model, export_format)
        messages.success(request, "Export queued: it appears below when it is ready.")
    except ExportRefused as refusal:
        messages.error(request, str(refusal))
    return redirect(reverse("training:model_detail", args=[model.uid]) + "?tab=artifacts")


@require_GET
def export_download(request: AuthenticatedRequest, uid: uuid.UUID, export_format: str) -> FileResponse:
    model = model_or_404(request, uid)
    done = get_object_or_404(Export, model=model, format=export_format, status=Export.Status.DONE)
    filename = download_filename(model.name, download_ending(done.format), fallback="model")
    return stream_file(done.file.name or "", filename)
