"""Streaming a stored file to its owner under a safe name."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404


def stream_file(key: str, filename: str, content_type: str | None = None, *, attachment: bool = True) -> FileResponse:
    """The stored file ``key`` as a download named ``filename`` (already made safe by
    ``training.filenames.download_filename``), or 404 if storage does not have it."""
    if not key or not default_storage.exists(key):
        raise Http404("The file is not in storage.")
    response = FileResponse(default_storage.open(key, "rb"), as_attachment=attachment, filename=filename)
    if content_type:
        response["Content-Type"] = content_type
    return response
