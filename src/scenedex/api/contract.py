"""What the OpenAPI document says beyond what FastAPI writes from the routes (issue 28).

``install_contract(app)`` wraps ``app.openapi`` once, so ``/openapi.json`` and
``docs/openapi.json`` (``scripts.openapi``) carry the same document:

- every error answer (status 400 and up) is ``application/problem+json`` with the ``Problem``
  schema (``api.problems``), whatever model the route declared;
- every operation that reads the database or Redis (all of ``/v1`` and ``/ready``) declares
  503 with a ``Retry-After`` header;
- every 202 declares ``Location`` (what to poll: the video, or the reprocess job) and
  ``Retry-After`` (``ACCEPTED_RETRY_AFTER_S``), which the routes set with ``accepted``;
- every answer declares ``X-Request-ID`` (``api.request_id``);
- examples keep their ``null`` values: FastAPI drops every ``None`` from the document
  (``exclude_none``), which left required fields out of the examples; ``example_nulls`` writes
  them as ``EXAMPLE_NULL``, put back as ``null`` here.

There is no rate limit in the API, so no operation declares 429.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response

from scenedex.api.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_S

PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
RETRY_AFTER_HEADER = {
    "description": f"seconds to wait before trying again ({RETRY_AFTER_S})",
    "schema": {"type": "integer", "minimum": 0},
}
ACCEPTED_RETRY_AFTER_S = 2
"""``Retry-After`` (seconds) of a 202: when polling its ``Location`` first makes sense (a queued
message usually starts within a second or two on an idle worker)."""
ACCEPTED_HEADERS = {
    "Location": {
        "description": "the resource (or job) to poll for the outcome",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Retry-After": {
        "description": f"seconds to wait before polling Location ({ACCEPTED_RETRY_AFTER_S})",
        "schema": {"type": "integer", "minimum": 0},
    },
}
REQUEST_ID_HEADER = {
    "description": "the request's id: the X-Request-ID sent (1-128 of A-Za-z0-9._:@/+=-) or a new one",
    "schema": {"type": "string"},
}
UNAVAILABLE = "the database, Redis or a model is unreachable: try again after Retry-After seconds"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


EXAMPLE_NULL = "\u2400example-null"
"""Stands for ``null`` in a model's examples until the document is written (see the module)."""


def example_nulls(value: Any) -> Any:
    """``value`` (an example) with every ``None`` written as ``EXAMPLE_NULL``."""
    if value is None:
        return EXAMPLE_NULL
    if isinstance(value, dict):
        return {key: example_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [example_nulls(item) for item in value]
    return value


def _restore_nulls(value: Any) -> Any:
    if value == EXAMPLE_NULL:
        return None
    if isinstance(value, dict):
        return {key: _restore_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore_nulls(item) for item in value]
    return value


def accepted_headers(location: str) -> dict[str, str]:
    """The headers of a 202 answer: ``Location`` (``location``, a path to poll) and
    ``Retry-After``."""
    return {"Location": location, "Retry-After": str(ACCEPTED_RETRY_AFTER_S)}


def accepted(response: Response, location: str) -> None:
    """Mark a 202 answer with ``accepted_headers(location)``."""
    response.headers.update(accepted_headers(location))


def install_contract(app: FastAPI) -> None:
    """Make ``app.openapi()`` return FastAPI's document with the changes above (built once,
    then cached like FastAPI's own)."""
    build: Callable[[], dict[str, Any]] = app.openapi
    done: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "document" not in done:
            done["document"] = contract(build())
        return done["document"]

    app.openapi = openapi  # type: ignore[method-assign]


def contract(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's OpenAPI dict) changed as the module says; returned."""
    document = _restore_nulls(document)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/") or path == "/ready":
                unavailable = responses.setdefault("503", {"description": UNAVAILABLE})
                unavailable.setdefault("headers", {})["Retry-After"] = copy.deepcopy(RETRY_AFTER_HEADER)
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                if status == "202":
                    headers.update(copy.deepcopy(ACCEPTED_HEADERS))
                headers["X-Request-ID"] = copy.deepcopy(REQUEST_ID_HEADER)
                if status[:1] in ("4", "5"):
                    response["content"] = copy.deepcopy(PROBLEM_CONTENT)
    return document
