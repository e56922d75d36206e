"""The signed-in home page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hubsite.http import AuthenticatedRequest
from training.views.progress import recent_models

RECENT_MODELS = 8


@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "training/home.html", {"recent_models": recent_models(request.user.pk, RECENT_MODELS)})
