"""Error answers as RFC 9457 problem details (``application/problem+json``), issue 28.

Every error the API answers is one JSON object::

    {"type": "tag:scenedex,2026:problem/not_found", "title": "Not found", "status": 404,
     "detail": "video 1b9d6bcd-... not found", "instance": "/v1/videos/1b9d6bcd-...",
     "code": "not_found"}

- ``type`` is a URI per kind of error (a ``tag:`` URI, RFC 4151: an identifier, not a page to
  fetch; RFC 9457 section 3.1.1 allows it), ``code`` the same kind as a short token for code
  that switches on it (``PROBLEM_TITLES`` lists them all, each with its fixed ``title``).
- ``status`` repeats the HTTP status; ``detail`` says in words what went wrong with this
  request (a validation error lists each field's message in it too); ``instance`` is the
  request's path.
- Extension members: ``errors`` on a 422 from validation (``[{"field": "body.k", "message": ...,
  "type": ...}]``: ``field`` is the location joined with dots, ``query.k``, ``body.scenes.0.start_s``),
  ``active_job_id`` on a 409 ``active_job``, ``kind`` on a 409 ``search_kind_unavailable``,
  ``checks`` on ``GET /ready``'s 503.
- A 503 carries ``Retry-After`` (``RETRY_AFTER_S`` seconds), a 401 its ``WWW-Authenticate``
  challenge, a 405 its ``Allow``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from scenedex.api.json_body import echoable

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "tag:scenedex,2026:problem/"
"""``type`` is this prefix and the ``code``."""

RETRY_AFTER_S = 5
"""``Retry-After`` (seconds) of a 503: the database, Redis or a model was unreachable for this
request; a reconnect is tried on the next one, so a few seconds is the useful wait."""

MAX_DETAIL_CHARS = 2000
"""A validation ``detail`` lists the fields' messages up to this many characters (all of them
are in ``errors``)."""

PROBLEM_TITLES: dict[str, str] = {
    "bad_request": "Bad request",
    "unauthorized": "Not authenticated",
    "forbidden": "Forbidden",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "conflict": "Conflict",
    "active_job": "The scope already has an active job",
    "search_kind_unavailable": "Search kind unavailable",
    "idempotency_key_reused": "Idempotency-Key reused with another request",
    "precondition_failed": "Precondition failed",
    "payload_too_large": "Payload too large",
    "unsupported_media_type": "Unsupported media type",
    "invalid_request": "Invalid request",
    "validation_failed": "Validation failed",
    "json_invalid": "Invalid JSON body",
    "internal_error": "Internal server error",
    "unavailable": "Service unavailable",
    "database_unavailable": "Database unavailable",
    "broker_unavailable": "Broker (Redis) unavailable",
    "model_unavailable": "Model unavailable",
    "not_ready": "Not ready",
}
"""Every ``code`` the API answers, with its ``title`` (the same for every occurrence)."""

_CODE_OF_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="where: the location joined with dots (query.k, body.scenes.0.start_s)")
    message: str = Field(description="what is wrong with it, in words")
    type: str = Field(description="the kind of check that failed (pydantic's error type)")


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details, ``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": f"{TYPE_PREFIX}not_found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "job c56a4180-65aa-42ec-a945-5fd21dec0538 not found",
                    "instance": "/v1/admin/jobs/c56a4180-65aa-42ec-a945-5fd21dec0538",
                    "code": "not_found",
                },
                {
                    "type": f"{TYPE_PREFIX}validation_failed",
                    "title": "Validation failed",
                    "status": 422,
                    "detail": "query.k: Input should be less than or equal to 100",
                    "instance": "/v1/search",
                    "code": "validation_failed",
                    "errors": [
                        {
                            "field": "query.k",
                            "message": "Input should be less than or equal to 100",
                            "type": "less_than_equal",
                        }
                    ],
                },
            ]
        }
    )

    type: str = Field(description="a URI naming the kind of error (tag:scenedex,2026:problem/<code>)")
    title: str = Field(description="a short summary of the kind of error (fixed per type)")
    status: int = Field(description="the HTTP status code", ge=100, le=599)
    detail: str = Field(description="what went wrong with this request, in words")
    instance: str | None = Field(None, description="the request's path")
    code: str = Field(description="the kind of error as a token (not_found, validation_failed, ...)")
    errors: list[FieldError] | None = Field(None, description="422 validation_failed: each invalid field")
    active_job_id: uuid.UUID | None = Field(None, description="409 active_job: the job already running")
    checks: dict[str, str] | None = Field(None, description="GET /ready's 503: each dependency's state")
    kind: str | None = Field(
        None, description="409 search_kind_unavailable: the search kind whose model is off (image)"
    )


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """The ``application/problem+json`` answer: ``status`` with ``detail`` (text), ``code``
    (default: the status's, e.g. 404 ``not_found``; must be a key of ``PROBLEM_TITLES``),
    ``instance`` (the request's path), ``headers`` (a 503 gets ``Retry-After`` unless given) and
    extension members (``errors``, ``active_job_id``, ``checks``: None ones are left out)."""
    code = code or _CODE_OF_STATUS.get(status, "internal_error" if status >= 500 else "bad_request")
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{code}",
        "title": PROBLEM_TITLES[code],
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    body.update({name: value for name, value in extensions.items() if value is not None})
    answer_headers = dict(headers or {})
    if status == 503:
        answer_headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return JSONResponse(body, status_code=status, headers=answer_headers, media_type=PROBLEM_MEDIA_TYPE)


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic/FastAPI validation errors (``loc``, ``msg``, ``type``) as ``FieldError`` dicts;
    locations are echoed safely (an unknown key may hold a lone surrogate: ``echoable``)."""
    return [
        {
            "field": ".".join(str(part) for part in echoable(list(error.get("loc", ())))) or "body",
            "message": str(echoable(str(error.get("msg", "")))),
            "type": str(echoable(str(error.get("type", "")))),
        }
        for error in errors
    ]


def validation_detail(errors: Sequence[Mapping[str, str]]) -> str:
    """One readable sentence of ``field_errors``: ``"query.k: ...; body.name: ..."``, cut at
    ``MAX_DETAIL_CHARS``."""
    text = "; ".join(f"{error['field']}: {error['message']}" for error in errors) or "invalid request"
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"
