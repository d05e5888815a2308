"""Errors shared by every area, the REST layer, the client and the CLI.

Domain code raises these; the server maps them to ``{"error": {"code", "message", "field"}}``
with the HTTP status below, and the client turns that body back into the same class, so a
caller sees the same exception whether it runs in the server or talks to it.
"""

from __future__ import annotations


class PaiError(Exception):
    status = 500
    code = "internal"
    retry_after: float | None = None  # seconds: sent as the Retry-After header, and read back from it

    def __init__(
        self, message: str, field: str | None = None, *, code: str | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}

    def __str__(self) -> str:
        return self.message


class BadInput(PaiError):
    status = 400
    code = "bad_input"


class Unauthorized(PaiError):
    status = 401
    code = "unauthorized"


class Forbidden(PaiError):
    status = 403
    code = "forbidden"


class NotFound(PaiError):
    status = 404
    code = "not_found"


class Conflict(PaiError):
    status = 409
    code = "conflict"


class Unavailable(PaiError):
    status = 503
    code = "unavailable"


class ServerNotFound(PaiError):
    """No control plane could be discovered from this process."""

    code = "server_not_found"


_BY_STATUS = {cls.status: cls for cls in (BadInput, Unauthorized, Forbidden, NotFound, Conflict, Unavailable)}


def from_response(status: int, body: dict | None, retry_after: str | None = None) -> PaiError:
    err = (body or {}).get("error") or {}
    cls = _BY_STATUS.get(status, PaiError)
    exc = cls(err.get("message") or f"HTTP {status}", err.get("field"), code=err.get("code"))
    exc.status = status
    try:
        exc.retry_after = float(retry_after) if retry_after else None
    except ValueError:  # an HTTP date: not one of ours
        exc.retry_after = None
    return exc
