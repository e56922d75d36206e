"""The model page's Predict tab: try the model on a picture (uploaded, or one of the
dataset's validation pictures), watch the worker's answer arrive, move the thresholds,
and save a result worth keeping.

Predictions run on a worker (``training.predictions``); these views only check, send
and show. Every view fetches the model through ``owned_or_404`` first, and a
prediction only through its owner and model, so anyone else gets a 404."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from hubsite.http import AuthenticatedRequest, owned_or_404
from hubsite.rate_limits import Limit
from training.filenames import download_filename
from training.models import SavedPrediction, YoloModel
from training.predictions import (
    Job,
    PredictionRefused,
    PredictUploadLimitHandler,
    delete_saved,
    job_for,
    predict_again,
    predict_sample,
    predict_upload,
    result_image,
    save_prediction,
    too_large_message,
    validation_samples,
)
from training.predictions.forms import ThresholdsForm
from training.views.downloads import stream_file

TAB_TEMPLATE = "training/_model_predict_tab.html"


def _signed_in_user(group: str, request: HttpRequest) -> str:
    return str(request.user.pk)


# Every prediction asked for (uploads, validation pictures, moved sliders) counts.
PREDICTIONS = Limit("predictions-user", _signed_in_user, "RATE_LIMIT_PREDICTIONS_PER_USER")


def predict_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    token = request.GET.get("prediction", "")
    return {
        "predict_ready": bool(model.best_weights),
        "validation_samples": validation_samples(model),
        "thresholds": ThresholdsForm(),
        "prediction": job_for(request.user, model, token) if token else None,
        "saved_predictions": model.saved_predictions.all(),
        "is_classify": model.dataset.task == "classify",
        "predict_ttl_minutes": max(1, settings.PREDICT_TTL_SECONDS // 60),
        "predict_max_bytes": settings.PREDICT_MAX_UPLOAD_BYTES,
        "predict_max_pixels": f"{settings.PREDICT_MAX_PIXELS:,}",
    }


def _model(request: AuthenticatedRequest, uid: uuid.UUID) -> YoloModel:
    return owned_or_404(YoloModel.objects.select_related("dataset"), request, uid=uid)


def _job(request: AuthenticatedRequest, model: YoloModel, token: str) -> Job:
    job = job_for(request.user, model, token)
    if job is None:
        raise Http404("No such prediction, or it has expired.")
    return job


def _prediction_response(
    request: AuthenticatedRequest, model: YoloModel, job: Job | None, *, error: str = "", status: int = 200
) -> HttpResponse:
    """The prediction fragment for htmx; without JavaScript, back to the tab."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        url = reverse("training:model_detail", args=[model.uid]) + "?tab=predict"
        return redirect(url + (f"&prediction={job.token}" if job else ""))
    context = {
        "model": model,
        "prediction": job,
        "predict_error": error,
        "is_classify": model.dataset.task == "classify",
    }
    return render(request, f"{TAB_TEMPLATE}#prediction", context, status=status)


def _rate_limited(request: AuthenticatedRequest, model: YoloModel) -> HttpResponse | None:
    seconds = PREDICTIONS.seconds_refused(request, count=True)
    if not seconds:
        return None
    minutes = -(-seconds // 60)
    error = f"Too many predictions in a short time: try again in {minutes} minute{'s' if minutes != 1 else ''}."
    return _prediction_response(request, model, None, error=error, status=429)


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; checked below
@require_POST
def predict_start(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    handler = PredictUploadLimitHandler.read_upload(request)
    model = _model(request, uid)
    if handler.exceeded:
        return _prediction_response(request, model, None, error=too_large_message(), status=413)
    return _predict_start(request, model)


@csrf_protect
def _predict_start(request: AuthenticatedRequest, model: YoloModel) -> HttpResponse:
    form = ThresholdsForm(request.POST)
    if not form.is_valid():
        return _prediction_response(request, model, None, error=form.error_text(), status=400)
    picture = request.FILES.get("picture")
    sample = request.POST.get("sample", "")
    if picture is None and not sample.isdigit():
        return _prediction_response(request, model, None, error="Choose a picture first.", status=400)
    refused = _rate_limited(request, model)
    if refused is not None:
        return refused
    conf, iou = form.thresholds()
    try:
        if picture is not None:
            job = predict_upload(request.user, model, picture.read(), conf=conf, iou=iou)
        else:
            job = predict_sample(request.user, model, int(sample), conf=conf, iou=iou)
    except PredictionRefused as refusal:
        return _prediction_response(request, model, None, error=str(refusal), status=refusal.status)
    return _prediction_response(request, model, job)


@require_POST
def predict_rerun(request: AuthenticatedRequest, uid: uuid.UUID, token: str) -> HttpResponse:
    model = _model(request, uid)
    previous = _job(request, model, token)
    form = ThresholdsForm(request.POST)
    if not form.is_valid():
        return _prediction_response(request, model, previous, error=form.error_text(), status=400)
    refused = _rate_limited(request, model)
    if refused is not None:
        return refused
    conf, iou = form.thresholds()
    try:
        job = predict_again(request.user, model, previous, conf=conf, iou=iou)
    except PredictionRefused as refusal:
        return _prediction_response(request, model, previous, error=str(refusal), status=refusal.status)
    return _prediction_response(request, model, job)


@require_GET
def predict_result(request: AuthenticatedRequest, uid: uuid.UUID, token: str) -> HttpResponse:
    """The prediction fragment the tab polls while the worker runs it."""
    model = _model(request, uid)
    job = job_for(request.user, model, token)
    if job is None:
        # Expired (or never this user's): say so once and stop polling.
        error = "This prediction has expired: predictions are kept only for a while unless saved."
        response = _prediction_response(request, model, None, error=error)
        return HttpResponseStopPolling(response.content) if request.htmx else response
    if job.abandoned:
        error = "No worker answered this prediction in time: try again in a moment."
        response = _prediction_response(request, model, None, error=error)
        return HttpResponseStopPolling(response.content) if request.htmx else response
    response = _prediction_response(request, model, job)
    return HttpResponseStopPolling(response.content) if request.htmx and job.finished else response


@require_GET
def predict_image(request: AuthenticatedRequest, uid: uuid.UUID, token: str) -> HttpResponse:
    model = _model(request, uid)
    _job(request, model, token)
    jpeg = result_image(token)
    if jpeg is None:
        raise Http404("This prediction has no picture, or it has expired.")
    response = HttpResponse(jpeg, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=600"
    return response


@require_POST
def predict_save(request: AuthenticatedRequest, uid: uuid.UUID, token: str) -> HttpResponse:
    model = _model(request, uid)
    job = _job(request, model, token)
    try:
        save_prediction(model, job)
    except PredictionRefused as refusal:
        return _prediction_response(request, model, job, error=str(refusal), status=refusal.status)
    return _saved_list_response(request, model)


@require_GET
def saved_prediction_image(request: AuthenticatedRequest, uid: uuid.UUID, pk: int) -> FileResponse:
    model = _model(request, uid)
    saved = get_object_or_404(SavedPrediction, model=model, pk=pk)
    filename = download_filename(model.name, f"-prediction-{saved.pk}.jpg", fallback="model")
    return stream_file(saved.image.name or "", filename, "image/jpeg", attachment=False)


@require_POST
def saved_prediction_delete(request: AuthenticatedRequest, uid: uuid.UUID, pk: int) -> HttpResponse:
    model = _model(request, uid)
    delete_saved(get_object_or_404(SavedPrediction, model=model, pk=pk))
    return _saved_list_response(request, model)


def _saved_list_response(request: AuthenticatedRequest, model: YoloModel) -> HttpResponse:
    if not request.htmx:
        return redirect(reverse("training:model_detail", args=[model.uid]) + "?tab=predict")
    context = {"model": model, "saved_predictions": model.saved_predictions.all()}
    return render(request, f"{TAB_TEMPLATE}#saved-predictions", context)
