"""Models: list, inspect, create (through the web's model form), their epochs, the
instance types on offer, weights and export downloads, exports and the cost report."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from django.http import FileResponse, Http404, HttpRequest, StreamingHttpResponse
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import paginate

from api.auth import BILLING, TRAIN, owner_of
from api.errors import ApiError
from api.form_errors import invalid
from api.lookups import MAX_ID, owned_model
from api.pagination import Pages
from api.schemas import LazyPage, SessionOut, session_out
from billing import reports
from billing.money import format_usd
from hubsite.models import User
from training import task_metrics
from training.comparison.runs import best_epoch
from training.exports import ExportRefused, download_ending, offered_exports, request_export
from training.filenames import download_filename
from training.forms import ModelCreateForm
from training.models import EpochRecord, Export, TrainingSession, YoloModel
from training.views.downloads import stream_file
from training.weights import StartWeightsGone, has_local_weights

router = Router(tags=["Models"])

WEIGHT_FIELDS = {"best": "best_weights", "last": "last_checkpoint"}
FORM_FIELD_NAMES = {"dataset": "dataset_id"}  # the form's names → the body's


# --- schemas ---------------------------------------------------------------------------


class ModelSummaryOut(Schema):
    id: int
    uid: str
    name: str
    dataset_id: int
    task: str
    architecture: str
    epochs_completed: int
    target_epochs: int
    created_at: datetime


class EpochHeadline(Schema):
    epoch: int
    metrics: dict[str, float]  # the task's headline measures, by their labels


class ModelOut(ModelSummaryOut):
    pretrained: bool
    start_kind: str
    lineage: str
    parent_id: int | None
    train_args: dict[str, Any]
    best_weights_available: bool
    last_weights_available: bool
    trained_at: datetime | None
    active_session: SessionOut | None
    best_epoch: EpochHeadline | None
    last_epoch: EpochHeadline | None


class ModelIn(Schema):
    """The web's model form as JSON. ``architecture`` defaults to the dataset task's
    default, ``pretrained`` to whether this server has that architecture's weights, as
    the form offers them; ``custom_args`` are other ultralytics training arguments."""

    name: str
    dataset_id: int = Field(ge=1, le=MAX_ID)
    architecture: str | None = None
    pretrained: bool | None = None
    start_from: str = Field("", max_length=200, description="A start option: model:<uid>:best|last or upload:<uid>")
    epochs: int = 100
    imgsz: int = 640
    batch: int = -1
    patience: int = 100
    cache: Literal["none", "ram", "disk"] = "none"
    custom_args: dict[str, Any] = Field(default_factory=dict)


class EpochOut(Schema):
    epoch: int
    session_id: int
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    metrics: dict[str, Any]


class ExportIn(Schema):
    format: str = Field(max_length=16, description="onnx, torchscript, openvino, ncnn or coreml")


class ExportOut(Schema):
    format: str
    label: str
    purpose: str
    status: str | None  # None: never asked for
    weights_epoch: int | None
    error: str
    finished_at: datetime | None
    downloadable: bool


class SessionCostOut(Schema):
    session_id: int
    status: str
    mode: str
    instance_type: str
    price_per_hour_micros: int
    epochs: int
    runtime_seconds: int
    cost_micros: int
    cost: str
    created_at: datetime


class CostReportOut(Schema):
    model_id: int
    total_micros: int
    total: str
    sessions: list[SessionCostOut]
    rows: list[dict[str, Any]]  # the CSV's rows, under its header's names


# --- models ----------------------------------------------------------------------------


@router.get("", response=list[ModelSummaryOut], summary="Your models, newest first")
@paginate(Pages)
def list_models(request: HttpRequest) -> LazyPage[YoloModel, ModelSummaryOut]:
    found = YoloModel.objects.filter(owner=owner_of(request)).select_related("dataset")
    return LazyPage(found.order_by("-created_at", "-pk"), summary_out)


@router.get("/{model_id}", response=ModelOut, summary="A model, its weights, active session and headline metrics")
def get_model(request: HttpRequest, model_id: int) -> ModelOut:
    return model_out(owned_model(owner_of(request), model_id))


@router.post(
    "", auth=TRAIN, response={201: ModelOut}, summary="Create a model (the web's model form: same checks, same service)"
)
def create(request: HttpRequest, body: ModelIn) -> Status[ModelOut]:
    owner = owner_of(request)
    form = ModelCreateForm(_form_data(owner, body), owner=owner)
    if not form.is_valid():
        raise _form_invalid(form.errors.get_json_data())
    try:
        model = form.create_model()
    except StartWeightsGone as gone:
        raise _form_invalid({"start_from": [{"message": str(gone)}]}) from gone
    return Status(201, model_out(model))


def _form_data(owner: User, body: ModelIn) -> dict[str, Any]:
    """The form's fields from the JSON body; the defaults the form's page would show."""
    bad_keys = [key for key in body.custom_args if not key.isidentifier()]
    if bad_keys:
        raise _form_invalid({"custom_args": [{"message": f"'{key}' is not an argument name."} for key in bad_keys]})
    architecture = body.architecture
    if architecture is None:  # the default the form's page shows for this dataset
        page_form = ModelCreateForm(owner=owner, initial={"dataset": str(body.dataset_id)})
        architecture = str(page_form.initial["architecture"])
    pretrained = has_local_weights(architecture) if body.pretrained is None else body.pretrained
    return {
        "name": body.name,
        "dataset": str(body.dataset_id),
        "architecture": architecture,
        "pretrained": pretrained,
        "start_from": body.start_from,
        "epochs": str(body.epochs),
        "imgsz": str(body.imgsz),
        "batch": str(body.batch),
        "patience": str(body.patience),
        "cache": body.cache,
        # One key=value line per argument; JSON values read back as the same YAML scalars.
        "custom_args": "\n".join(f"{key}={json.dumps(value)}" for key, value in body.custom_args.items()),
    }


def _form_invalid(errors: dict[str, list[dict[str, Any]]]) -> ApiError:
    return invalid(errors, FORM_FIELD_NAMES)


def summary_out(model: YoloModel) -> ModelSummaryOut:
    return ModelSummaryOut(
        id=model.pk,
        uid=str(model.uid),
        name=model.name,
        dataset_id=model.dataset_id,
        task=model.dataset.task,
        architecture=model.architecture,
        epochs_completed=model.epochs_completed,
        target_epochs=model.target_epochs,
        created_at=model.created_at,
    )


def model_out(model: YoloModel) -> ModelOut:
    active = (
        model.sessions.filter(status__in=TrainingSession.ACTIVE_STATUSES)
        .select_related("model__dataset", "instance_type")
        .first()
    )
    task = model.dataset.task
    history = [(epoch, metrics) for epoch, metrics in model.epochs.order_by("epoch").values_list("epoch", "metrics")]
    best = best_epoch(task, history)
    return ModelOut(
        id=model.pk,
        uid=str(model.uid),
        name=model.name,
        dataset_id=model.dataset_id,
        task=task,
        architecture=model.architecture,
        epochs_completed=model.epochs_completed,
        target_epochs=model.target_epochs,
        created_at=model.created_at,
        pretrained=model.pretrained,
        start_kind=model.start_kind,
        lineage=model.lineage,
        parent_id=model.parent_id,
        train_args=model.train_args,
        best_weights_available=bool(model.best_weights.name),
        last_weights_available=bool(model.last_checkpoint.name),
        trained_at=model.trained_at,
        active_session=session_out(active) if active is not None else None,
        best_epoch=_headline(task, best),
        last_epoch=_headline(task, history[-1] if history else None),
    )


def _headline(task: str, epoch: tuple[int, dict[str, float]] | None) -> EpochHeadline | None:
    if epoch is None:
        return None
    return EpochHeadline(epoch=epoch[0], metrics=dict(task_metrics.headline_values(task, epoch[1])))


@router.get("/{model_id}/epochs", response=list[EpochOut], summary="Every recorded epoch with its metrics (poll this)")
def list_epochs(request: HttpRequest, model_id: int) -> list[EpochRecord]:
    model = owned_model(owner_of(request), model_id)
    return list(EpochRecord.objects.filter(model=model).order_by("epoch"))


# --- downloads and exports ---------------------------------------------------------------


@router.get("/{model_id}/weights/{kind}", summary="Download the best or last weights (.pt)")
def download_weights(request: HttpRequest, model_id: int, kind: str) -> FileResponse:
    model = owned_model(owner_of(request), model_id)
    if kind not in WEIGHT_FIELDS:
        raise Http404
    key = getattr(model, WEIGHT_FIELDS[kind]).name or ""
    if not key:
        raise ApiError(404, "no_weights_yet", "These weights do not exist yet.")
    filename = download_filename(model.name, f"-{kind}.pt", fallback="model")
    return stream_file(key, filename, "application/octet-stream")


@router.get("/{model_id}/exports", response=list[ExportOut], summary="Every export format and its state")
def list_exports(request: HttpRequest, model_id: int) -> list[ExportOut]:
    model = owned_model(owner_of(request), model_id)
    return [
        ExportOut(
            format=row.format,
            label=row.label,
            purpose=row.purpose,
            status=row.export.status if row.export else None,
            weights_epoch=row.export.weights_epoch if row.export else None,
            error=row.export.error if row.export else "",
            finished_at=row.export.finished_at if row.export else None,
            downloadable=bool(row.export and row.export.status == Export.Status.DONE and row.export.file.name),
        )
        for row in offered_exports(model)
    ]


@router.post(
    "/{model_id}/exports", auth=TRAIN, response={202: ExportOut}, summary="Export the best weights to a format"
)
def create_export(request: HttpRequest, model_id: int, body: ExportIn) -> Status[ExportOut]:
    model = owned_model(owner_of(request), model_id)
    try:
        export = request_export(model, body.format)
    except ExportRefused as refusal:
        raise ApiError(409, "export_refused", str(refusal)) from refusal
    row = next(row for row in offered_exports(model) if row.format == export.format)
    return Status(
        202,
        ExportOut(
            format=row.format,
            label=row.label,
            purpose=row.purpose,
            status=export.status,
            weights_epoch=export.weights_epoch,
            error=export.error,
            finished_at=export.finished_at,
            downloadable=False,
        ),
    )


@router.get("/{model_id}/exports/{export_format}/download", summary="Download a finished export")
def download_export(request: HttpRequest, model_id: int, export_format: str) -> FileResponse:
    model = owned_model(owner_of(request), model_id)
    done = Export.objects.filter(model=model, format=export_format, status=Export.Status.DONE).first()
    if done is None:
        raise ApiError(404, "no_export_yet", "No finished export in this format yet: ask for one and wait.")
    return stream_file(
        done.file.name or "", download_filename(model.name, download_ending(done.format), fallback="model")
    )


# --- cost report -----------------------------------------------------------------------


@router.get(
    "/{model_id}/cost-report",
    auth=BILLING,
    response=CostReportOut,
    summary="What the model cost, per session and per ledger line (?format=csv: the web's CSV)",
)
def cost_report(
    request: HttpRequest,
    model_id: int,
    report_format: Literal["json", "csv"] = Query("json", alias="format"),  # type: ignore[type-arg]
) -> CostReportOut | StreamingHttpResponse:
    model = owned_model(owner_of(request), model_id)
    if report_format == "csv":
        lines = reports.csv_lines(reports.COST_REPORT_HEADER, reports.cost_report_rows(model))
        response = StreamingHttpResponse(lines, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="hubsite-cost-report-model-{model.pk}.csv"'
        return response
    billing = reports.model_billing(model)
    return CostReportOut(
        model_id=model.pk,
        total_micros=billing.total_micros,
        total=format_usd(billing.total_micros),
        sessions=[
            SessionCostOut(
                session_id=cost.session.pk,
                status=cost.session.status,
                mode=cost.session.mode,
                instance_type=cost.session.instance_type.slug,
                price_per_hour_micros=cost.session.price_per_hour_micros,
                epochs=cost.epochs,
                runtime_seconds=cost.runtime_seconds,
                cost_micros=cost.price_micros,
                cost=format_usd(cost.price_micros),
                created_at=cost.session.created_at,
            )
            for cost in billing.sessions
        ],
        rows=[dict(zip(reports.COST_REPORT_HEADER, row, strict=True)) for row in reports.cost_report_rows(model)],
    )
