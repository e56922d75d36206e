"""The one way lists page: ``?limit=`` (1 to 200, default 50) and ``?offset=``,
answered as ``{"items": [...], "count": N}``. Bounds keep every value inside what
PostgreSQL can compare, so a huge offset is a 422, not a database error."""

from __future__ import annotations

from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

MAX_LIMIT = 200
MAX_OFFSET = 1_000_000_000


class Pages(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(50, ge=1, le=MAX_LIMIT)
        offset: int = Field(0, ge=0, le=MAX_OFFSET)
