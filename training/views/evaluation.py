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
from django.utils.functional import cached_property
from django.utils.http import content_disposition_header
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_POST

from hubsite.http import AuthenticatedRequest, owned_or_404
from hubsite.rate_limits import Limit, limit_posts
from training.evaluation import (
    ClassRow,
    EvaluationRefused,
    Figure,
    PicturePair,
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
from training.models import ModelEvaluation, TrainingSession, YoloModel
from training.task_metrics import Metric
from training.views.downloads import stream_file
from training.views.evaluation_charts import CurveChart, confusion_cells, curve_charts

EVALUATIONS = Limit("evaluations-user", "user", "RATE_LIMIT_EVALUATIONS_PER_USER")
# The bulk of an evaluation (the curves alone are tens of kilobytes), read only to
# render results that are not cached yet.
RESULT_FIELDS = ("metrics", "per_class", "curves", "confusion", "pictures")
SUMMARY_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def evaluation_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    """The tab's context: one query for the evaluation's state, one more for its
    results when they are not cached yet, whatever the number of classes."""
    evaluation = ModelEvaluation.objects.filter(model=model).defer(*RESULT_FIELDS).first()
    done = evaluation is not None and evaluation.status == ModelEvaluation.Status.DONE
    return {
        "evaluation": evaluation,
        "evaluation_outdated": evaluation is not None and evaluation.weights_epoch < model.epochs_completed,
        "active": model.sessions.filter(status__in=TrainingSession.ACTIVE_STATUSES).exists(),
        "results": EvaluationResults(evaluation) if done and evaluation else None,
    }


class EvaluationResults:
    """What the tab shows of a done evaluation, each part built when the template first
    reads it. A done evaluation never changes (a new one gets a new ``finished_at``), so
    the template caches the rendered results per evaluation and, on a hit, reads none."""

    def __init__(self, state: ModelEvaluation) -> None:
        self.state = state  # without RESULT_FIELDS

    @property
    def cache_key(self) -> str:
        finished = self.state.finished_at.isoformat() if self.state.finished_at else ""
        return f"{self.state.pk}:{self.state.model_id}:{finished}"

    @cached_property
    def evaluation(self) -> ModelEvaluation:
        return ModelEvaluation.objects.get(pk=self.state.pk)

    @cached_property
    def figures(self) -> list[Figure]:
        return figures(self.evaluation)

    @cached_property
    def class_figures(self) -> tuple[Metric, ...]:
        return class_figures(self.evaluation.task)

    @cached_property
    def class_rows(self) -> list[ClassRow]:
        return class_rows(self.evaluation)

    @cached_property
    def ranked_by(self) -> Metric:
        return ranked_by(self.evaluation.task)

    @cached_property
    def confusion(self) -> list[tuple[str, SafeString]]:
        return [(row.predicted, confusion_cells(row)) for row in confusion_rows(self.evaluation)]

    @cached_property
    def confusion_labels(self) -> list[str]:
        return [predicted for predicted, _cells in self.confusion]

    @cached_property
    def curve_charts(self) -> list[CurveChart]:
        names = [str(row["name"]) for row in self.evaluation.per_class]
        return curve_charts(self.evaluation.curves, names)

    @cached_property
    def curves_of(self) -> str:
        return curves_of(self.evaluation.task)

    @cached_property
    def picture_pairs(self) -> list[PicturePair]:
        return picture_pairs(self.evaluation)


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
