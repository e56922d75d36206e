"""The model page's Artifacts tab: every export format offered, with its state."""

from __future__ import annotations

from typing import Any

from hubsite.http import AuthenticatedRequest
from training.exports import offered_exports
from training.models import Export, YoloModel


def artifacts_tab_context(request: AuthenticatedRequest, model: YoloModel) -> dict[str, Any]:
    offered = offered_exports(model)
    return {
        "offered_exports": offered,
        "exports_in_progress": any(
            row.export is not None and row.export.status in (Export.Status.PENDING, Export.Status.RUNNING)
            for row in offered
        ),
    }
