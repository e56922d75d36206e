from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import reports, services
from billing.forms import StatementForm
from billing.models import Hold, LedgerLine
from billing.receipts import receipts_context
from hubsite.http import AuthenticatedRequest, owned_or_404
from training.models import YoloModel


def _account_context(request: AuthenticatedRequest, statement_form: StatementForm) -> dict[str, object]:
    account = services.account_for(request.user)
    lines = LedgerLine.objects.filter(account=account).select_related("created_by").order_by("-created_at", "-id")
    page = Paginator(lines, settings.BILLING_LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    holds = (
        Hold.objects.filter(account=account, status=Hold.Status.OPEN)
        .select_related("session__model")
        .order_by("created_at")
    )
    context = {"account": account, "page": page, "holds": holds, "statement_form": statement_form}
    return {**context, **receipts_context(account)}


@require_GET
def account(request: AuthenticatedRequest) -> HttpResponse:
    """Balance, holds, the ledger (paginated; htmx swaps only the ledger), statements."""
    context = _account_context(request, StatementForm(initial=StatementForm.initial_range()))
    if request.htmx:
        return render(request, "billing/account.html#ledger", context)
    return render(request, "billing/account.html", context)


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
