"""The one error a remote-training service raises: an HTTP status, a stable code and a
message for people (``api.platform.remote`` turns it into the protocol's JSON)."""

from __future__ import annotations


class RemoteRefused(Exception):
    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
