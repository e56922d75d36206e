"""A web form's errors in the API's shape: the same ``{"field", "message"}`` list the
body's own validation gives (fields named ``body.<name>``, a whole-form error ``body``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.errors import ApiError


def invalid(errors: Mapping[str, list[dict[str, Any]]], names: Mapping[str, str] | None = None) -> ApiError:
    """A 422 ``invalid`` from ``form.errors.get_json_data()``; ``names`` renames the
    form's fields to the body's (``__all__`` is the whole body)."""
    renamed = {"__all__": "", **(names or {})}
    fields = [
        {"field": f"body.{renamed.get(name, name)}".rstrip("."), "message": str(error["message"])}
        for name, field_errors in errors.items()
        for error in field_errors
    ]
    message = "; ".join(f"{field['field']}: {field['message']}" for field in fields)
    return ApiError(422, "invalid", message, errors=fields)
