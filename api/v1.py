"""The REST API, version 1: JSON under ``/api/v1/``, its OpenAPI schema at
``/api/v1/openapi.json`` and browsable docs at ``/api/v1/docs`` (Swagger UI served
from django-ninja's own static files, no CDN)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI, Schema, Swagger

from api.auth import READ, key_of
from api.errors import install_error_handlers
from api.routers import billing, datasets, models, sessions
from api.throttle import PerKeyThrottle

api = NinjaAPI(
    title="hubsite API",
    version="1",
    description=(
        "Datasets, models, training sessions, downloads and billing for scripts. "
        "Authenticate with a personal API key (Account → API keys) sent as "
        "`Authorization: Bearer <key>`. Errors are JSON: `{code, message}`. See docs/api.md."
    ),
    urls_namespace="api-v1",
    auth=READ,
    throttle=PerKeyThrottle(),
    docs=Swagger(settings={"persistAuthorization": False}),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install_error_handlers(api)
api.add_router("/datasets", datasets.router)
api.add_router("/models", models.router)
api.add_router("/sessions", sessions.router)
api.add_router("/instance-types", sessions.instance_types_router)
api.add_router("/billing", billing.router)


class MeOut(Schema):
    email: str
    key_name: str
    scopes: list[str]


@api.get("/me", response=MeOut, tags=["Account"], summary="Who this key belongs to, and its scopes")
def me(request: HttpRequest) -> MeOut:
    api_key = key_of(request)
    return MeOut(email=api_key.owner.email, key_name=api_key.name, scopes=list(api_key.scopes))
