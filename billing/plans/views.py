"""The Plans page: what each plan allows and costs, the user's own standing, Upgrade and Manage."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import services
from billing.plans.standing import offered_plans, standing_of
from hubsite.http import AuthenticatedRequest


@require_GET
def index(request: AuthenticatedRequest) -> HttpResponse:
    standing = standing_of(services.account_for(request.user))
    return render(request, "billing/plans/index.html", {"plans": offered_plans(), "standing": standing})
