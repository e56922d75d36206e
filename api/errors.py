"""The API's one error shape: ``{"code": "...", "message": "..."}`` with a 4xx status
(``errors`` adds the fields at fault where there are any). Codes are stable; messages
are for people and may change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError


class ErrorOut(Schema):
    """The error shape, for the schema's documented responses."""

    code: str
    message: str


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(
    api: NinjaAPI, request: HttpRequest, status: int, code: str, message: str, **extra: Any
) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message, **extra}, status=status)


def install_error_handlers(api: NinjaAPI) -> None:
    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        response = error_response(api, request, exc.status, exc.code, exc.message, **exc.extra)
        if exc.status == 429 and "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response

    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(api, request, 404, "not_found", "No such object, or it is not yours.")

    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        response = error_response(
            api, request, 401, "unauthenticated", "Send a live API key as 'Authorization: Bearer <key>'."
        )
        response["WWW-Authenticate"] = "Bearer"
        return response

    def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        fields = [
            {"field": ".".join(str(part) for part in error.get("loc", ())[1:]), "message": error.get("msg", "")}
            for error in exc.errors
        ]
        message = "; ".join(f"{field['field'] or 'body'}: {field['message']}" for field in fields) or "Invalid input."
        return error_response(api, request, 422, "invalid", message, errors=fields)

    def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        wait = max(1, int(exc.wait or 1))
        response = error_response(
            api, request, 429, "rate_limited", f"Too many requests with this key; retry in {wait} s."
        )
        response["Retry-After"] = str(wait)
        return response

    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return error_response(api, request, exc.status_code, "http_error", str(exc))

    handlers: list[tuple[type[Exception], Callable[[HttpRequest, Any], HttpResponse]]] = [
        (ApiError, api_error),
        (Http404, not_found),
        (AuthenticationError, unauthenticated),
        (ValidationError, invalid),
        (Throttled, throttled),
        (HttpError, http_error),
    ]
    for exc_class, handler in handlers:
        api.add_exception_handler(exc_class, handler)
