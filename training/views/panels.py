"""The context of the model page's Train tab: the live session panel, or step 3
(Start / Resume) with what would block it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings

from billing import services as billing
from billing.money import format_usd
from billing.plans.standing import PlanRefusal, Standing, check_cloud_training, concurrent_session_limit, standing_of
from hubsite.models import User
from training.forms import StartForm
from training.models import Dataset, InstanceType, TrainingSession, YoloModel
from training.presence import live_queues
from training.sessions import concurrency_refusal
from training.sessions.estimates import (
    EpochSeconds,
    Estimate,
    epoch_seconds,
    epoch_seconds_by_instance_type,
    estimate_cost,
)
from training.views.charts import model_charts
from training.views.progress import session_progress


@dataclass(frozen=True)
class InstanceOption:
    instance_type: InstanceType
    online: bool
    epoch_seconds: EpochSeconds
    needs_plan: str = ""  # the plan refuses this instance type: "needs Pro" (shown, and the radio disabled)


@dataclass(frozen=True)
class PlanAllowance:
    """What the plan in force allows on the Train step (``_plan_allowance.html``);
    None in the context when plans are off."""

    standing: Standing
    concurrent_sessions: int
    instance_type_names: list[str]  # empty: every instance type offered
    refusal: str  # why Cloud Training is refused right now ("" when it is allowed)
    upgrade_url: str
    overdue_until: datetime | None  # past_due within grace: when Cloud Training stops


def latest_session(model: YoloModel) -> TrainingSession | None:
    return model.sessions.select_related("instance_type", "model__dataset").first()


def train_tab_context(user: User, model: YoloModel) -> dict[str, Any]:
    """The whole Train tab: the panel and the charts of the epochs recorded so far."""
    return {**panel_context(user, model), "charts": model_charts(model)}


def panel_context(user: User, model: YoloModel, form: StartForm | None = None) -> dict[str, Any]:
    session = latest_session(model)
    context: dict[str, Any] = {"model": model, "session": session}
    if session is not None:
        context["progress"] = session_progress(session)
    if session is None or session.status in TrainingSession.FINAL_STATUSES:
        context.update(start_context(user, model, form))
    return context


def start_context(user: User, model: YoloModel, form: StartForm | None = None) -> dict[str, Any]:
    resuming = bool(model.last_checkpoint and model.epochs_completed)
    form = form or StartForm(model=model, resuming=resuming)
    account = billing.account_for(user)
    available = account.balance_micros - account.held_micros
    standing = standing_of(account)
    options = _with_plan(standing, instance_options(model))
    chosen = _chosen(form, options)
    mode = _value(form, "mode") or TrainingSession.Mode.EPOCHS
    limit = concurrent_session_limit(account, standing)
    allowance = plan_allowance(standing, chosen, limit)
    blockers = start_blockers(user, model, chosen, mode, available, limit=limit)
    if allowance is not None and allowance.refusal:
        blockers.insert(0, allowance.refusal)
    month_spend = billing.month_spend_micros(account) if account.monthly_spending_cap_micros is not None else None
    if month_spend is not None and month_spend >= (account.monthly_spending_cap_micros or 0):
        blockers.append(
            f"This month's spending cap of {format_usd(account.monthly_spending_cap_micros or 0)} is reached: "
            "raise it on the Billing page to train again this month."
        )
    return {
        "plan": allowance,
        "form": form,
        "resuming": resuming,
        "resume_from_epoch": model.epochs_completed + 1,
        "options": options,
        "chosen": chosen,
        "mode": mode,
        "available_micros": available,
        "minimum_micros": settings.BILLING_MIN_START_BALANCE_MICROS,
        "estimate": estimate(form, model, chosen, mode),
        "blockers": blockers,
        "monthly_cap_micros": account.monthly_spending_cap_micros,
        "month_spend_micros": month_spend,
    }


def instance_options(model: YoloModel) -> list[InstanceOption]:
    online = live_queues()
    durations = epoch_seconds_by_instance_type(model)
    return [
        InstanceOption(
            instance_type,
            instance_type.queue_name in online,
            epoch_seconds(instance_type, durations.get(instance_type.pk, [])),
        )
        for instance_type in InstanceType.objects.filter(active=True)
    ]


def plan_allowance(standing: Standing, chosen: InstanceOption | None, limit: int) -> PlanAllowance | None:
    """The plan panel's facts, and why the chosen instance type is refused (None: plans off)."""
    plan = standing.plan
    if plan is None:
        return None
    refusal, upgrade_url = "", ""
    if chosen is not None:
        try:
            check_cloud_training(standing, chosen.instance_type.pk, chosen.instance_type.name)
        except PlanRefusal as refused:
            refusal, upgrade_url = refused.message, refused.upgrade_url
    elif not plan.allows_cloud_training:
        nothing = PlanRefusal(f"Cloud Training is not part of your plan ({plan.name}).")
        refusal, upgrade_url = nothing.message, nothing.upgrade_url
    overdue_until = standing.grace_ends_at if standing.payment_overdue and not standing.grace_over else None
    return PlanAllowance(
        standing=standing,
        concurrent_sessions=limit,
        instance_type_names=[instance_type.name for instance_type in plan.instance_types.all()],
        refusal=refusal,
        upgrade_url=upgrade_url,
        overdue_until=overdue_until,
    )


def _with_plan(standing: Standing, options: list[InstanceOption]) -> list[InstanceOption]:
    """Mark the instance types a plan that allows Cloud Training leaves out ("needs Pro").
    A plan without Cloud Training leaves every type selectable, so the estimate still
    works; its panel says why Start is disabled."""
    if standing.plan is None or not standing.plan.allows_cloud_training:
        return options
    marked = []
    for option in options:
        try:
            check_cloud_training(standing, option.instance_type.pk, option.instance_type.name)
        except PlanRefusal as refusal:
            needs = f"needs {refusal.needed_plan}" if refusal.needed_plan else "not in your plan"
            option = replace(option, needs_plan=needs)
        marked.append(option)
    return marked


def _value(form: StartForm, name: str) -> Any:
    if form.is_bound:
        return form.data.get(name)
    return form.initial.get(name, form.fields[name].initial)


def _chosen(form: StartForm, options: list[InstanceOption]) -> InstanceOption | None:
    wanted = _value(form, "instance_type")
    wanted_pk = getattr(wanted, "pk", wanted)
    for option in options:
        if str(option.instance_type.pk) == str(wanted_pk):
            return option
    usable = [option for option in options if not option.needs_plan]
    fallback = (usable or options)[0] if options else None
    return next((option for option in usable if option.online), fallback)


def estimate(form: StartForm, model: YoloModel, chosen: InstanceOption | None, mode: str) -> Estimate | None:
    if chosen is None:
        return None
    timed = mode == TrainingSession.Mode.TIMED
    budget = StartForm.time_budget_seconds({n: _int(_value(form, n)) for n in ("days", "hours", "minutes")})
    return estimate_cost(
        model,
        chosen.instance_type.price_per_hour_micros,
        chosen.epoch_seconds,
        mode=mode,
        target_epochs=None if timed else _int(_value(form, "epochs")) or None,
        time_budget_seconds=budget if timed else None,
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def start_blockers(
    user: User, model: YoloModel, chosen: InstanceOption | None, mode: str, available_micros: int, *, limit: int = 1
) -> list[str]:
    """Why Start Training is disabled right now, in the user's words (empty: it is enabled).
    ``limit``: Cloud Training sessions the account may run at once (the plan's)."""
    blockers = []
    if model.dataset.status != Dataset.Status.READY:
        blockers.append("The dataset is not ready.")
    active = TrainingSession.objects.filter(owner=user, status__in=TrainingSession.ACTIVE_STATUSES, remote=False)
    if limit and active.count() >= limit:  # no limit at all: the plan allows no Cloud Training, said first
        blockers.append(concurrency_refusal(limit))
    if chosen is None or not chosen.online:
        name = chosen.instance_type.name if chosen else "this instance type"
        blockers.append(f"No {name} worker is online right now.")
    minimum: int = settings.BILLING_MIN_START_BALANCE_MICROS
    if mode == TrainingSession.Mode.EPOCHS and available_micros < minimum:
        blockers.append(
            f"Epochs mode needs at least {format_usd(minimum)} available; "
            f"top up {format_usd(minimum - available_micros)} or more."
        )
    return blockers
