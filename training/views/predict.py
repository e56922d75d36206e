"""The model page's Predict tab."""

from __future__ import annotations

from typing import Any

from hubsite.http import AuthenticatedRequest
from training.models import YoloModel


def predict_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    return {}
