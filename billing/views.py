from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing import reports, services
from billing.forms import MonthlySpendingCapForm, StatementForm
from billing.models import Account, Hold, LedgerLine
from billing.money import format_usd, micros_to_usd
from billing.receipts import receipts_context
from hubsite.http import AuthenticatedRequest, owned_or_404
from training.models import YoloModel

CAP_CARD = "billing/account.html#spending-cap"


def _account_context(
    request: AuthenticatedRequest, statement_form: StatementForm, cap_form: MonthlySpendingCapForm | None = None
) -> dict[str, object]:
    account = services.account_for(request.user)
    lines = LedgerLine.objects.filter(account=account).select_related("created_by").order_by("-created_at", "-id")
    page = Paginator(lines, settings.BILLING_LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    holds = (
        Hold.objects.filter(account=account, status=Hold.Status.OPEN)
        .select_related("session__model")
        .order_by("created_at")
    )
    return {
        "account": account,
        "page": page,
        "holds": holds,
        "statement_form": statement_form,
        **_spending_cap_context(account, cap_form),
        **receipts_context(account),
    }


def _spending_cap_context(account: Account, form: MonthlySpendingCapForm | None = None) -> dict[str, object]:
    cap = account.monthly_spending_cap_micros
    initial = {"cap": micros_to_usd(cap).quantize(Decimal("0.01")) if cap is not None else None}
    return {
        "account": account,
        "cap_form": form or MonthlySpendingCapForm(initial=initial),
        "month_spend_micros": services.month_spend_micros(account),
    }


@require_GET
def account(request: AuthenticatedRequest) -> HttpResponse:
    """Balance, holds, the ledger (paginated; htmx swaps only the ledger), statements."""
    context = _account_context(request, StatementForm(initial=StatementForm.initial_range()))
    if request.htmx:
        return render(request, "billing/account.html#ledger", context)
    return render(request, "billing/account.html", context)


@require_POST
def monthly_spending_cap(request: AuthenticatedRequest) -> HttpResponse:
    """Set the account's monthly spending cap, or clear it (an empty amount); htmx swaps
    only its card. Saved under the account lock (holds read it under the same lock);
    bad input changes nothing and shows the field's error."""
    form = MonthlySpendingCapForm(request.POST)
    if not form.is_valid():
        if request.htmx:
            account = services.account_for(request.user)
            return render(request, CAP_CARD, _spending_cap_context(account, form), status=400)
        context = _account_context(request, StatementForm(initial=StatementForm.initial_range()), form)
        return render(request, "billing/account.html", context, status=400)
    with transaction.atomic():
        account = services.lock_account(request.user.pk)
        account.monthly_spending_cap_micros = form.cleaned_data["cap"]
        account.save(update_fields=["monthly_spending_cap_micros", "updated_at"])
    cap = account.monthly_spending_cap_micros
    message = f"Monthly spending cap set to {format_usd(cap)}." if cap is not None else "Monthly spending cap removed."
    if request.htmx:
        return render(request, CAP_CARD, {**_spending_cap_context(account), "cap_saved": message})
    messages.success(request, message)
    return redirect("billing:account")


@require_GET
def statement(request: AuthenticatedRequest) -> HttpResponseBase:
    """The account's ledger lines for a date range, as a streamed CSV."""
    form = StatementForm(request.GET)
    if not form.is_valid():
        return render(request, "billing/account.html", _account_context(request, form), status=400)
    start, end = form.bounds()
    account = services.account_for(request.user)
    rows = reports.statement_rows(account, start, end)
    response = StreamingHttpResponse(reports.csv_lines(reports.STATEMENT_HEADER, rows), content_type="text/csv")
    name = f"hubsite-statement-{form.cleaned_data['start']:%Y%m%d}-{form.cleaned_data['end']:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
def model_billing(request: AuthenticatedRequest, model_id: int) -> HttpResponse:
    """A model's Billing tab: sessions, total, the CSV link (fragment for htmx)."""
    model = owned_or_404(YoloModel, request, pk=model_id)
    context = {"billing": reports.model_billing(model), "model": model}
    if request.htmx:
        return render(request, "billing/_model_billing.html", context)
    return render(request, "billing/model_billing.html", context)


@require_GET
def model_cost_report(request: AuthenticatedRequest, model_id: int) -> HttpResponseBase:
    """The model's cost report: one row per charged epoch, prepayment, refund, write-off."""
    model = owned_or_404(YoloModel, request, pk=model_id)
    rows = reports.cost_report_rows(model)
    response = StreamingHttpResponse(reports.csv_lines(reports.COST_REPORT_HEADER, rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="hubsite-cost-report-model-{model.pk}.csv"'
    return response
