"""Train, stop, resume and watch a model: the Train tab, step 3 of the wizard, and
Pay Now's page."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, trigger_client_event

from billing.stripe.checkout import CheckoutUnavailable, PayNowRefused
from hubsite.http import AuthenticatedRequest
from hubsite.models import User
from training import payments, sessions
from training.forms import PayNowForm, StartForm
from training.models import Dataset, TrainingSession, YoloModel
from training.views.charts import model_charts
from training.views.models import model_or_404
from training.views.panels import latest_session, panel_context, start_context, train_tab_context

PANEL = "training/session_panel.html"
START_FORM_ESTIMATE = "training/session_start_form.html#estimate"
PAY_NOW_PAGE = "training/session_pay_now.html"


def _model_page(model: YoloModel) -> str:
    return reverse("training:model_detail", args=[model.uid]) + "?tab=train"


@require_GET
def train_wizard(request: AuthenticatedRequest) -> HttpResponse:
    """Step 1: pick a ready dataset."""
    datasets = Dataset.objects.filter(owner=request.user, status=Dataset.Status.READY)
    return render(request, "training/session_wizard_dataset.html", {"datasets": datasets, "step": 1})


@require_GET
def train_page(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    """Step 3 of the wizard as a page of its own (the model page's Train tab shows the same panel)."""
    model = model_or_404(request, uid)
    context = {**train_tab_context(request.user, model), "step": 3}
    return render(request, "training/session_train_page.html", context)


@require_GET
def panel(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    """The Train panel; polled every few seconds while a session is active."""
    model = model_or_404(request, uid)
    context = panel_context(request.user, model)
    response = render(request, f"{PANEL}#panel", context)
    progress = context.get("progress")
    seen = request.GET.get("seen", "")
    if progress is not None and seen.isdigit() and int(seen) != progress.epochs_completed:
        trigger_client_event(response, "epoch-landed")
    if request.htmx and _is_final(context.get("session")):
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_GET
def estimate(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    """The start form's estimate and what blocks Start, for the form's current (unsaved) choices."""
    model = model_or_404(request, uid)
    user = request.user
    context = start_context(user, model, StartForm(request.GET, model=model))
    return render(request, START_FORM_ESTIMATE, context)


def _is_final(session: TrainingSession | None) -> bool:
    return session is None or session.status in TrainingSession.FINAL_STATUSES


@require_POST
def start(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    model = model_or_404(request, uid)
    user = request.user
    previous = latest_session(model)
    resuming = bool(previous and previous.status in sessions.RESUMABLE and model.last_checkpoint)
    form = StartForm(request.POST, model=model, resuming=resuming)
    if not form.is_valid():
        return _panel_with_error(request, user, model, form)
    start_request = form.start_request()
    if form.pays_now:
        try:
            checkout = payments.open_pay_now(user, model, start_request)
        except (sessions.StartRefused, PayNowRefused, CheckoutUnavailable) as error:
            form.add_error(None, str(error))
            return _panel_with_error(request, user, model, form, getattr(error, "upgrade_url", ""))
        return _redirect(request, checkout.url)
    try:
        if resuming and previous is not None:
            sessions.resume_session(user, previous, start_request)
        else:
            sessions.start_session(user, model, start_request)
    except sessions.StartRefused as refusal:
        form.add_error(None, str(refusal))
        return _panel_with_error(request, user, model, form, refusal.upgrade_url)
    if request.htmx:
        return render(request, f"{PANEL}#panel", panel_context(user, model))
    messages.success(request, "Training queued.")
    return redirect(_model_page(model))


def _panel_with_error(
    request: AuthenticatedRequest, user: User, model: YoloModel, form: StartForm, upgrade_url: str = ""
) -> HttpResponse:
    """The form with its errors: in place of the panel (base.html lets htmx swap a 400), or as step 3's page.
    ``upgrade_url``: the plan refused, so the error offers an Upgrade link beside its reason."""
    context = {**panel_context(user, model, form), "upgrade_url": upgrade_url}
    if request.htmx:
        return render(request, f"{PANEL}#panel", context, status=400)
    page_context = {**context, "charts": model_charts(model), "step": 3}
    return render(request, "training/session_train_page.html", page_context, status=400)


def _redirect(request: AuthenticatedRequest, url: str) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_http_methods(["GET", "POST"])
def pay_now(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    """Timed training paid by card, on a page of its own: the session is created and
    queued only once Stripe confirms the payment."""
    model = model_or_404(request, uid)
    form = PayNowForm(request.POST if request.method == "POST" else None)
    context: dict[str, object] = {"model": model, "form": form, "error": "", "upgrade_url": ""}
    if request.method == "GET":
        return render(request, PAY_NOW_PAGE, context)
    if not form.is_valid():
        return render(request, PAY_NOW_PAGE, context, status=400)
    try:
        checkout = payments.open_pay_now(request.user, model, form.start_request())
    except (sessions.StartRefused, PayNowRefused) as refusal:
        context["error"] = str(refusal)
        context["upgrade_url"] = getattr(refusal, "upgrade_url", "")
        return render(request, PAY_NOW_PAGE, context, status=400)
    except CheckoutUnavailable as error:
        context["error"] = str(error)
        return render(request, PAY_NOW_PAGE, context, status=503)
    if request.htmx:
        return HttpResponseClientRedirect(checkout.url)
    return HttpResponseRedirect(checkout.url, status=303)


@require_POST
def stop(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    model = model_or_404(request, uid)
    session = model.sessions.filter(status__in=TrainingSession.ACTIVE_STATUSES).first()
    notice = "" if session else "Nothing is training: there is nothing to stop."
    if session is not None:
        sessions.request_stop(session)
    if request.htmx:  # the panel shows the notice in place (a message would wait for the next page)
        return render(request, f"{PANEL}#panel", {**panel_context(request.user, model), "notice": notice})
    if notice:
        messages.info(request, notice)
    return redirect(_model_page(model))


@require_GET
def charts(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    model = model_or_404(request, uid)
    return render(request, f"{PANEL}#charts", {"model": model, "charts": model_charts(model)})
