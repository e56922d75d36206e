"""Training sessions: Start (Epochs or Timed from the balance, with an optional
``Idempotency-Key``), list, inspect with live progress, Stop and Resume; and the
instance types on offer. Every mutation calls the web's own services."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import paginate

from api.auth import TRAIN, owner_of
from api.errors import ApiError
from api.form_errors import invalid
from api.lookups import MAX_ID, owned_model, owned_session
from api.models import StartRequestRecord
from api.pagination import Pages
from api.schemas import LazyPage, SessionOut, session_out
from billing import services as billing
from billing.money import format_usd
from billing.plans.standing import PlanRefusal
from hubsite.models import User
from training import sessions
from training.forms import StartForm
from training.models import InstanceType, TrainingSession, YoloModel
from training.presence import live_queues
from training.views.panels import latest_session

router = Router(tags=["Sessions"])
instance_types_router = Router(tags=["Instance types"])

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200
# The Start form's fields → the API's names, for per-field errors.
FORM_FIELD_NAMES = {
    "days": "time_budget_seconds",
    "hours": "time_budget_seconds",
    "minutes": "time_budget_seconds",
    "spending_cap": "spending_cap_usd",
}
SPENDING_CAP_DESCRIPTION = (
    "Epochs mode: stop before an epoch that would take this session's charges past this many US dollars "
    "(above zero, whole cents, at most 100000); omit for no cap"
)


class InstanceTypeOut(Schema):
    slug: str
    name: str
    gpu: str
    gpu_memory_gb: int
    price_per_hour_micros: int
    price_per_hour: str
    online: bool  # a worker for it is live now; Start is refused without one


class TrainIn(Schema):
    """The Start form as JSON, paid from the balance (Pay Now is the web's only)."""

    mode: Literal["epochs", "timed"] = "epochs"
    epochs: int | None = Field(None, description="Epochs mode: the target epoch count (the model's own if omitted)")
    time_budget_seconds: int | None = Field(None, ge=0, description="Timed mode: whole minutes, 5 min to 7 days")
    instance_type: str = Field(max_length=40, description="An instance type's slug (GET /instance-types)")
    resume_after_top_up: bool = False
    spending_cap_usd: Decimal | None = Field(None, description=SPENDING_CAP_DESCRIPTION)


class StartIn(TrainIn):
    model_id: int = Field(ge=1, le=MAX_ID)


class ResumeIn(Schema):
    mode: Literal["epochs", "timed"] = "epochs"
    epochs: int | None = None
    time_budget_seconds: int | None = Field(None, ge=0)
    instance_type: str | None = Field(None, max_length=40, description="The stopped session's if omitted")
    resume_after_top_up: bool = False
    spending_cap_usd: Decimal | None = Field(None, description=SPENDING_CAP_DESCRIPTION)


# --- instance types --------------------------------------------------------------------


@instance_types_router.get("", response=list[InstanceTypeOut], summary="The instance types on offer and their prices")
def list_instance_types(request: HttpRequest) -> list[InstanceTypeOut]:
    online = live_queues()
    return [
        InstanceTypeOut(
            slug=offered.slug,
            name=offered.name,
            gpu=offered.gpu,
            gpu_memory_gb=offered.gpu_memory_gb,
            price_per_hour_micros=offered.price_per_hour_micros,
            price_per_hour=format_usd(offered.price_per_hour_micros),
            online=offered.queue_name in online,
        )
        for offered in InstanceType.objects.filter(active=True)
    ]


# --- sessions --------------------------------------------------------------------------


@router.get("", response=list[SessionOut], summary="Your sessions, newest first (?model_id= for one model's)")
@paginate(Pages)
def list_sessions(
    request: HttpRequest,
    model_id: int | None = Query(None, ge=1, le=MAX_ID),  # type: ignore[type-arg]
) -> LazyPage[TrainingSession, SessionOut]:
    found: QuerySet[TrainingSession] = TrainingSession.objects.filter(owner=owner_of(request))
    if model_id is not None:
        found = found.filter(model_id=model_id)
    ordered = found.select_related("model__dataset", "instance_type").order_by("-created_at", "-pk")
    return LazyPage(ordered, session_out)


@router.get("/{session_id}", response=SessionOut, summary="A session's live progress, cost and console tail")
def get_session(request: HttpRequest, session_id: int) -> SessionOut:
    return session_out(owned_session(owner_of(request), session_id))


@router.post(
    "",
    auth=TRAIN,
    response={200: SessionOut, 201: SessionOut},
    summary="Start training a model (or resume it, as the web's Start does when its last session stopped)",
)
def start(request: HttpRequest, response: HttpResponse, body: StartIn) -> Status[SessionOut]:
    owner = owner_of(request)
    model = owned_model(owner, body.model_id)

    def begin(start_request: sessions.StartRequest) -> TrainingSession:
        previous = latest_session(model)
        if previous is not None and previous.status in sessions.RESUMABLE and model.last_checkpoint:
            return sessions.resume_session(owner, previous, start_request)
        return sessions.start_session(owner, model, start_request)

    return _start_once(request, response, owner, model, body, ("start", body.model_dump()), begin)


@router.post("/{session_id}/stop", auth=TRAIN, response=SessionOut, summary="Stop a session (the Stop button)")
def stop(request: HttpRequest, session_id: int) -> SessionOut:
    session = owned_session(owner_of(request), session_id)
    if session.status not in TrainingSession.ACTIVE_STATUSES:
        raise ApiError(409, "not_active", "Nothing is training: there is nothing to stop.")
    sessions.request_stop(session)
    session.refresh_from_db()
    return session_out(session)


@router.post(
    "/{session_id}/resume",
    auth=TRAIN,
    response={200: SessionOut, 201: SessionOut},
    summary="Resume a stopped, paused or failed session at its next epoch (the Resume button)",
)
def resume(request: HttpRequest, response: HttpResponse, session_id: int, body: ResumeIn) -> Status[SessionOut]:
    owner = owner_of(request)
    previous = owned_session(owner, session_id)
    model = previous.model
    latest = latest_session(model)
    if latest is not None and latest.pk != previous.pk:
        raise ApiError(409, "start_refused", "Only the model's latest session can be resumed.")
    train = StartIn(
        model_id=model.pk,
        mode=body.mode,
        epochs=body.epochs,
        time_budget_seconds=body.time_budget_seconds,
        instance_type=body.instance_type or previous.instance_type.slug,
        resume_after_top_up=body.resume_after_top_up,
        spending_cap_usd=body.spending_cap_usd,
    )

    def begin(start_request: sessions.StartRequest) -> TrainingSession:
        return sessions.resume_session(owner, previous, start_request)

    return _start_once(request, response, owner, model, train, ("resume", session_id, body.model_dump()), begin)


def _start_once(
    request: HttpRequest,
    response: HttpResponse,
    owner: User,
    model: YoloModel,
    body: TrainIn,
    what: tuple[Any, ...],
    begin: Callable[[sessions.StartRequest], TrainingSession],
) -> Status[SessionOut]:
    """Check ``body`` with the web's Start form and call ``begin`` with its request, at
    most once per ``Idempotency-Key``. The account's row lock (the one every Start takes)
    is held from the key's check to its record, so two requests with one key start one
    session: the second waits, then finds the first's record."""
    idempotency_key = _idempotency_key(request)
    fingerprint = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
    with transaction.atomic():
        billing.lock_account(owner.pk)
        if idempotency_key is not None:
            replayed = _replay(owner, idempotency_key, fingerprint)
            if replayed is not None:
                response["Idempotent-Replayed"] = "true"
                return Status(200, session_out(replayed))
        start_request = _start_request(model, body)
        try:
            session = begin(start_request)
        except sessions.StartRefused as refusal:
            raise _refused(refusal, request) from refusal
        if idempotency_key is not None:
            StartRequestRecord.objects.create(
                owner=owner, idempotency_key=idempotency_key, fingerprint=fingerprint, session=session
            )
    session = TrainingSession.objects.select_related("model__dataset", "instance_type").get(pk=session.pk)
    return Status(201, session_out(session))


def _idempotency_key(request: HttpRequest) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            422, "invalid_idempotency_key", f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} characters."
        )
    return key


def _replay(owner: User, idempotency_key: str, fingerprint: str) -> TrainingSession | None:
    record = (
        StartRequestRecord.objects.select_related("session__model__dataset", "session__instance_type")
        .filter(owner=owner, idempotency_key=idempotency_key)
        .first()
    )
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"This {IDEMPOTENCY_HEADER} was used for a different request; use a new key for a new request.",
        )
    return record.session


def _start_request(model: YoloModel, body: TrainIn) -> sessions.StartRequest:
    form = StartForm(_form_data(model, body), model=model)
    if not form.is_valid():
        raise invalid(form.errors.get_json_data(), FORM_FIELD_NAMES)
    return form.start_request()


def _form_data(model: YoloModel, body: TrainIn) -> dict[str, Any]:
    offered = InstanceType.objects.filter(active=True, slug=body.instance_type).values_list("pk", flat=True).first()
    data: dict[str, Any] = {
        "mode": body.mode,
        "epochs": "" if body.epochs is None else str(body.epochs),
        "instance_type": "" if offered is None else str(offered),
        "payment": StartForm.BALANCE,
        "resume_after_top_up": body.resume_after_top_up,
        "spending_cap": "" if body.spending_cap_usd is None else str(body.spending_cap_usd),
    }
    if body.mode == "epochs" and body.epochs is None:
        data["epochs"] = str(StartForm(model=model).fields["epochs"].initial)  # what the form offers
    if body.mode == "timed":
        seconds = body.time_budget_seconds or 0
        if seconds % 60:
            raise invalid({"time_budget_seconds": [{"message": "Give whole minutes."}]})
        days, rest = divmod(seconds, 86_400)
        data.update(days=str(days), hours=str(rest // 3_600), minutes=str(rest % 3_600 // 60))
    return data


def _refused(refusal: sessions.StartRefused, request: HttpRequest) -> ApiError:
    """The web's refusal, with a stable code: 403 ``plan_required`` when the plan does not
    allow it (with the Plans page's address, "" when no plan would), 402 when the
    balance is short, else 409 (``spending_cap_reached`` when the monthly spending cap
    refuses it)."""
    if isinstance(refusal.__cause__, PlanRefusal):
        upgrade_url = request.build_absolute_uri(refusal.upgrade_url) if refusal.upgrade_url else ""
        return ApiError(403, "plan_required", str(refusal), upgrade_url=upgrade_url)
    if isinstance(refusal.__cause__, billing.InsufficientBalance):
        return ApiError(402, "insufficient_balance", str(refusal))
    if isinstance(refusal.__cause__, billing.SpendingCapReached):
        return ApiError(409, "spending_cap_reached", str(refusal))
    if isinstance(refusal.__cause__, IntegrityError):
        return ApiError(409, "already_training", str(refusal))
    return ApiError(409, "start_refused", str(refusal))
