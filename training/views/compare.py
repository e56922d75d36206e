"""Side by side: the comparison of two or more of the user's models."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hubsite.http import AuthenticatedRequest
from training.comparison import MAX_MODELS, MIN_MODELS, CannotCompare, compare_models


@require_GET
def model_compare(request: AuthenticatedRequest) -> HttpResponse:
    """``?m=<uid>&m=<uid>...``: the models picked on the model list. Another user's
    model is refused like one that does not exist (404, the same words)."""
    differences_first = request.GET.get("order") != "usual"
    bounds = {"min_models": MIN_MODELS, "max_models": MAX_MODELS}
    try:
        comparison = compare_models(request.user, request.GET.getlist("m"), differences_first=differences_first)
    except CannotCompare as refusal:
        return render(
            request, "training/model_compare.html", {"refusal": refusal.message, **bounds}, status=refusal.status
        )
    other_order = request.GET.copy()
    other_order["order"] = "usual" if differences_first else "differences"
    context = {
        "comparison": comparison,
        "differences_first": differences_first,
        "other_order_query": other_order.urlencode(),
        **bounds,
    }
    return render(request, "training/model_compare.html", context)
