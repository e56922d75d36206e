"""``{% load training_tags %}``: ``{% train_panel model %}`` renders the Train tab."""

from __future__ import annotations

from typing import Any

from django import template

from training.charts import model_charts
from training.models import YoloModel
from training.train_panel import panel_context

register = template.Library()


@register.inclusion_tag("training/session_panel.html", takes_context=True)
def train_panel(context: template.Context, model: YoloModel) -> dict[str, Any]:
    request = context["request"]
    return {
        **panel_context(request.user, model),
        "charts": model_charts(model),
        "request": request,
        "csrf_token": context.get("csrf_token"),
    }
