"""Request bodies of the mutating routes: size, content type, JSON syntax and fields,
each refused with a 4xx ApiError that says what was wrong and where."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator
from pydantic_core import ErrorDetails

from he_ha.admin.contract import MaintenanceMode
from he_ha.admin.http_errors import ApiError

DEFAULT_MAX_BODY = 64 * 1024  # the largest valid body is a few dozen bytes

M = TypeVar("M", bound=BaseModel)


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: MaintenanceMode


MAX_PATH = 4096  # PATH_MAX
MAX_TICKET_TTL = 24 * 3600


class VmStartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    paused: StrictBool = False  # strict: "yes" or 1 is a client bug, not a request to pause
    vm_conf: StrictStr | None = Field(None, max_length=MAX_PATH)  # an alternative vm.conf (recovery)

    @field_validator("vm_conf")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        # The daemon's working directory is not the client's: a relative path would name
        # another file than the one the admin meant.
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an absolute path")
        if value is not None and "\0" in value:
            raise ValueError("must not contain NUL bytes")
        return value


class ConsolePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    password: StrictStr = Field(min_length=1, max_length=1024)
    ttl: StrictInt = Field(120, ge=1, le=MAX_TICKET_TTL)  # seconds the password stays valid


class NoFields(BaseModel):
    """shutdown / poweroff: an empty body or ``{}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ApiError(400, "invalid_json", f"field {key!r} appears twice in the body", field=key)
        result[key] = value
    return result


def _describe(error: ErrorDetails, model: type[BaseModel]) -> tuple[str, str]:
    """(field, message) for one pydantic error."""
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        known = ", ".join(repr(name) for name in model.model_fields) or "none"
        return field, f"unknown field {field!r} (known fields: {known})"
    if error["type"] == "missing":
        return field, f"missing required field {field!r}"
    return field, f"field {field!r}: {error['msg']} (got {error['input']!r})"


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """An empty body is ``{}``; anything else must be one UTF-8 JSON object."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, "invalid_json", f"malformed JSON body at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", f"the body must be a JSON object, got {type(data).__name__}")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        described = [_describe(error, model) for error in exc.errors()]
        raise ApiError(400, "invalid_field", "; ".join(m for _, m in described), field=described[0][0]) from None


async def read_body(request: web.Request, model: type[M], max_body: int) -> M:
    if request.content_length is not None and request.content_length > max_body:
        raise ApiError(413, "body_too_large", f"the body has {request.content_length} bytes; the limit is {max_body}")
    raw = await request.read()  # aiohttp refuses a chunked body past client_max_size (413)
    if raw.strip() and request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be application/json, not {request.content_type!r}",
        )
    return validate(model, parse_json_object(raw))
