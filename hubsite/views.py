from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from hubsite.forms import SignUpForm

RECENT_MODELS = 8


@login_not_required
@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    return render(request, "hubsite/landing.html")


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    from training.progress import recent_models

    assert request.user.pk is not None  # login is required here
    return render(request, "hubsite/home.html", {"recent_models": recent_models(request.user.pk, RECENT_MODELS)})


@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to hubsite. Your account is ready.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
