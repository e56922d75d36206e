"""``{% load training_tags %}``: ``{% train_panel model %}`` renders the Train tab."""

from __future__ import annotations

from typing import Any

from django import template

from training.models import YoloModel
from training.views.panels import train_tab_context

register = template.Library()


@register.inclusion_tag("training/session_panel.html", takes_context=True)
def train_panel(context: template.Context, model: YoloModel) -> dict[str, Any]:
    request = context["request"]
    return {
        **train_tab_context(request.user, model),
        "request": request,
        "csrf_token": context.get("csrf_token"),
    }
