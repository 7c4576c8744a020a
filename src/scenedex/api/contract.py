"""What the OpenAPI document says beyond what FastAPI writes from the routes (issue 28).

``install_contract(app)`` wraps ``app.openapi`` once, so ``/openapi.json`` and
``docs/openapi.json`` (``scripts.openapi``) carry the same document:

- every error answer (status 400 and up) is ``application/problem+json`` with the ``Problem``
  schema (``api.problems``), whatever model the route declared;
- every admin operation (``/v1/admin/...``) declares 403 (a token without the admin role);
- every operation that reads the database or Redis (all of ``/v1`` and ``/ready``) declares
  503 with a ``Retry-After`` header;
- every 202 declares ``Location`` (what to poll: the video, or the reprocess job) and
  ``Retry-After`` (``ACCEPTED_RETRY_AFTER_S``), which the routes set with ``accepted``;
- every answer declares ``X-Request-ID`` (``api.request_id``);
- ``servers`` (the default local address; clients set their own base URL), ``info.license``,
  and ``security: []`` on every operation that takes no token (``/health``, ``/ready``, the
  webhook calls scenedex makes, which are signed instead);
- the webhooks (calls scenedex makes) lose the 422 FastAPI gives every operation with a body,
  and its then unused ``HTTPValidationError`` schema;
- examples keep their ``null`` values: FastAPI drops every ``None`` from the document
  (``exclude_none``), which left required fields out of the examples; they are taken again
  from the models.

There is no rate limit in the API, so no operation declares 429.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

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
SERVERS = [{"url": "http://127.0.0.1:8080", "description": "scenedex api on its default address"}]
LICENSE = {"name": "Proprietary (no licence granted yet)", "identifier": "LicenseRef-Proprietary"}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _models_by_name() -> dict[str, list[type[BaseModel]]]:
    """Every pydantic model class defined so far, by class name."""
    found: dict[str, list[type[BaseModel]]] = {}
    stack: list[type[BaseModel]] = [BaseModel]
    while stack:
        for model in stack.pop().__subclasses__():
            found.setdefault(model.__name__, []).append(model)
            stack.append(model)
    return found


def _restore_examples(document: dict[str, Any]) -> None:
    """Put back the ``null`` values FastAPI drops from the component schemas' ``examples``: each
    schema named after exactly one model takes the model's own examples."""
    models = _models_by_name()
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        candidates = models.get(name, [])
        extra = candidates[0].model_config.get("json_schema_extra") if len(candidates) == 1 else None
        if "examples" in schema and isinstance(extra, dict) and "examples" in extra:
            schema["examples"] = jsonable_encoder(extra["examples"])


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
    done: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        if "document" not in done:
            done["document"] = contract(build())
        return done["document"]

    app.openapi = openapi  # type: ignore[method-assign]


def contract(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's OpenAPI dict) changed as the module says; returned."""
    _restore_examples(document)
    for item in document.get("webhooks", {}).values():
        for operation in item.values():  # FastAPI's 422 for a call scenedex makes: not an answer of ours
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            schemas.pop(unused, None)
    document["servers"] = SERVERS
    document.setdefault("info", {})["license"] = LICENSE
    for item in [*document.get("paths", {}).values(), *document.get("webhooks", {}).values()]:
        for method, operation in item.items():
            if method in _METHODS:
                operation.setdefault("security", [])
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/admin/"):
                responses.setdefault("403", {"description": "the token lacks the admin role"})
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
