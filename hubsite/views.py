from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from hubsite.forms import SignUpForm
from hubsite.rate_limits import SIGN_UPS, TooManyAttempts, limit_posts


@login_not_required
@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("training:home")
    return render(request, "hubsite/landing.html")


@login_not_required
@require_http_methods(["GET", "POST"])
@limit_posts(*SIGN_UPS)
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("training:home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to hubsite. Your account is ready.")
        return redirect("training:home")
    return render(request, "registration/signup.html", {"form": form})


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def rate_limited(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The page for a refused sign-in post (``RATELIMIT_VIEW``)."""
    if isinstance(exception, TooManyAttempts):
        seconds = exception.retry_after_seconds
    else:
        seconds = settings.RATE_LIMIT_WINDOW_SECONDS
    response = render(request, "429.html", {"minutes": math.ceil(seconds / 60)}, status=429)
    response["Retry-After"] = str(seconds)
    return response
