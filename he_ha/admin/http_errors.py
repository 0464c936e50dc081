"""Typed API errors and their JSON form: every failure the admin socket reports is
``{"error": "<code>", "message": "..."}`` (plus ``"field"`` when one input is to blame)."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

# Codes for the statuses aiohttp itself raises (router, body size); ours pass their own.
_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "refused",
    413: "body_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
    504: "deadline_exceeded",
}


class ApiError(Exception):
    """A request failed with a known HTTP status; ``code`` is the stable machine-readable name."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def code_for(status: int) -> str:
    return _CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, str] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers=headers)
