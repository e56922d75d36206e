"""Model pages: the list, the create form (step 2 of the wizard), the model page
with its tabs, rename, and the weights downloads."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hubsite.http import AuthenticatedRequest, owned_or_404
from training import catalogue
from training.comparison import MAX_MODELS, MIN_MODELS
from training.filenames import download_filename
from training.forms import ModelCreateForm, RenameForm
from training.models import Dataset, YoloModel
from training.views.artifacts import artifacts_tab_context
from training.views.downloads import stream_file
from training.views.evaluation import evaluation_tab_context
from training.views.predict import predict_tab_context
from training.weights import StartWeightsGone

MODEL_TABS = ("train", "metrics", "evaluation", "predict", "configuration", "billing", "artifacts")
WEIGHT_KINDS = ("best", "last")


def model_or_404(request: AuthenticatedRequest, uid: uuid.UUID) -> YoloModel:
    """The signed-in user's model with its dataset, or 404."""
    return owned_or_404(YoloModel.objects.select_related("dataset"), request, uid=uid)


@require_GET
def model_list(request: AuthenticatedRequest) -> HttpResponse:
    models = list(YoloModel.objects.filter(owner=request.user).select_related("dataset"))
    context = {
        "models": models,
        # ?compare=<uid> (the model page's "Compare with..." link) ticks that model.
        "preselected": request.GET.getlist("compare"),
        "min_compare": MIN_MODELS,
        "max_compare": MAX_MODELS,
    }
    return render(request, "training/model_list.html", context)


@require_http_methods(["GET", "POST"])
def model_create(request: AuthenticatedRequest) -> HttpResponse:
    owner = request.user
    if request.method == "POST":
        form = ModelCreateForm(request.POST, owner=owner)
        if form.is_valid():
            try:
                model = form.create_model()
            except StartWeightsGone as gone:
                form.add_error("start_from", str(gone))
            else:
                messages.success(request, f"Model {model.name} created. Step 3: choose how to train it.")
                return redirect("training:train_page", uid=model.uid)
        return render(request, "training/model_form.html", {"form": form}, status=400)
    initial: dict[str, Any] = {}
    chosen = request.GET.get("dataset", "")
    ready = Dataset.objects.filter(owner=owner, status=Dataset.Status.READY)
    if chosen:
        with contextlib.suppress(ValueError):
            initial["dataset"] = ready.filter(uid=uuid.UUID(chosen)).first()
    if request.GET.get("start_from"):
        initial["start_from"] = request.GET["start_from"]  # a choice the form offers, or ignored
    form = ModelCreateForm(owner=owner, initial=initial)
    return render(request, "training/model_form.html", {"form": form, "has_ready": ready.exists()})


def _metrics_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    epochs = list(model.epochs.all())
    metric_keys: list[str] = []
    for record in epochs:
        for key in record.metrics:
            if key not in metric_keys:
                metric_keys.append(key)
    return {
        "metric_keys": metric_keys,
        "metric_rows": [(record, [record.metrics.get(key) for key in metric_keys]) for record in epochs],
    }


def _configuration_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    return {
        "train_args": sorted(model.train_args.items()),
        "architecture": catalogue.find_architecture(model.architecture),
        "rename_form": RenameForm(initial={"name": model.name}),
    }


def _artifacts_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    weights = [(kind, getattr(model, _weights_field(kind)).name) for kind in WEIGHT_KINDS]
    return {"weights": weights, **artifacts_tab_context(request, model)}


# Each tab's own context, built only when that tab is shown.
TAB_CONTEXTS: dict[str, Callable[[AuthenticatedRequest, YoloModel], dict[str, Any]]] = {
    "metrics": _metrics_tab_context,
    "evaluation": evaluation_tab_context,
    "predict": predict_tab_context,
    "configuration": _configuration_tab_context,
    "artifacts": _artifacts_tab_context,
}


@require_GET
def model_detail(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    model = model_or_404(request, uid)
    tab = request.GET.get("tab", "train")
    if tab not in MODEL_TABS:
        raise Http404("No such tab.")
    context = {"model": model, "tab": tab, "tabs": MODEL_TABS}
    if tab in TAB_CONTEXTS:
        context.update(TAB_CONTEXTS[tab](request, model))
    if request.htmx and not request.htmx.boosted:
        # The tab's content, and the tab bar again (out of band) to mark the tab now shown.
        return render(request, "training/model_detail.html#model-tab", {**context, "swap_tab_nav": True})
    return render(request, "training/model_detail.html", context)


@require_POST
def model_rename(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    model = model_or_404(request, uid)
    form = RenameForm(request.POST)
    if form.is_valid():
        catalogue.rename_model(model, form.cleaned_data["name"])
        messages.success(request, "Model renamed.")
    else:
        messages.error(request, "The name was not changed: " + " ".join(str(e) for e in form.errors.get("name", [])))
    return redirect("training:model_detail", uid=model.uid)


def _weights_field(kind: str) -> str:
    return {"best": "best_weights", "last": "last_checkpoint"}[kind]


@require_GET
def model_weights(request: AuthenticatedRequest, uid: uuid.UUID, kind: str) -> FileResponse:
    model = model_or_404(request, uid)
    if kind not in WEIGHT_KINDS:
        raise Http404("No such weights.")
    key = getattr(model, _weights_field(kind)).name or ""
    if not key:
        raise Http404("These weights do not exist yet.")
    filename = download_filename(model.name, f"-{kind}.pt", fallback="model")
    return stream_file(key, filename, "application/octet-stream")
