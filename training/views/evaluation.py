"""The model page's Evaluation tab, "Evaluate again", the validation pictures and the
JSON and CSV summaries. Every view fetches the model through ``owned_or_404`` first:
another user's model is a 404."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from hubsite.http import AuthenticatedRequest, owned_or_404
from hubsite.rate_limits import Limit, limit_posts
from training.evaluation import (
    EvaluationRefused,
    class_figures,
    class_rows,
    confusion_rows,
    curves_of,
    evaluate_now,
    figures,
    picture_pairs,
    ranked_by,
    summary_csv,
    summary_json,
)
from training.filenames import download_filename
from training.models import ModelEvaluation, YoloModel
from training.views.downloads import stream_file
from training.views.evaluation_charts import curve_charts

EVALUATIONS = Limit("evaluations-user", "user", "RATE_LIMIT_EVALUATIONS_PER_USER")
SUMMARY_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def evaluation_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    """The tab's context, in one query whatever the number of classes."""
    evaluation = ModelEvaluation.objects.filter(model=model).first()
    context: dict[str, Any] = {
        "evaluation": evaluation,
        "evaluation_outdated": evaluation is not None and evaluation.weights_epoch < model.epochs_completed,
    }
    if evaluation is None or evaluation.status != ModelEvaluation.Status.DONE:
        return context
    confusion = confusion_rows(evaluation)
    return {
        **context,
        "figures": figures(evaluation),
        "class_figures": class_figures(evaluation.task),
        "class_rows": class_rows(evaluation),
        "ranked_by": ranked_by(evaluation.task),
        "confusion_labels": [row.predicted for row in confusion],
        "confusion_rows": confusion,
        "curve_charts": curve_charts(evaluation.curves, [str(row["name"]) for row in evaluation.per_class]),
        "curves_of": curves_of(evaluation.task),
        "picture_pairs": picture_pairs(evaluation),
    }


def _model(request: AuthenticatedRequest, uid: uuid.UUID) -> YoloModel:
    return owned_or_404(YoloModel.objects.select_related("dataset"), request, uid=uid)


def _done(model: YoloModel) -> ModelEvaluation:
    return get_object_or_404(ModelEvaluation, model=model, status=ModelEvaluation.Status.DONE)


@require_POST
@limit_posts(EVALUATIONS)
def evaluate(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    model = _model(request, uid)
    try:
        evaluate_now(model)
        messages.success(request, "Evaluation queued: the results appear here when it is done.")
    except EvaluationRefused as refusal:
        messages.error(request, str(refusal))
    return redirect(reverse("training:model_detail", args=[model.uid]) + "?tab=evaluation")


@require_GET
def evaluation_picture(request: AuthenticatedRequest, uid: uuid.UUID, index: int) -> FileResponse:
    evaluation = _done(_model(request, uid))
    if index >= len(evaluation.pictures):
        raise Http404("No such picture.")
    return stream_file(evaluation.pictures[index], f"evaluation-{index}.jpg", "image/jpeg", attachment=False)


@require_GET
def evaluation_summary(request: AuthenticatedRequest, uid: uuid.UUID, file_format: str) -> HttpResponse:
    if file_format not in SUMMARY_TYPES:
        raise Http404("No such summary.")
    model = _model(request, uid)
    evaluation = _done(model)
    body = json.dumps(summary_json(model, evaluation), indent=2) if file_format == "json" else summary_csv(evaluation)
    response = HttpResponse(body, content_type=SUMMARY_TYPES[file_format])
    filename = download_filename(model.name, f"-evaluation.{file_format}", fallback="model")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
