"""Checks of the API's error answers: RFC 9457 problem details (``scenedex.api.problems``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from scenedex.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TITLES, TYPE_PREFIX

MEMBERS = {"type", "title", "status", "detail", "code"}
EXTENSIONS = {"instance", "errors", "active_job_id", "checks", "kind"}


def problem_of(status: int, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
    """The problem document of an answer (status, headers, body), checked: the media type is
    ``application/problem+json``; ``type``, ``title``, ``status``, ``detail`` and ``code`` are
    there and agree (``type`` ends in ``code``, ``title`` is the code's, ``status`` the
    answer's, ``detail`` non-empty text); no member outside the declared ones; a validation
    problem lists its fields in ``errors``; a 503 says ``Retry-After``."""
    content_type = {name.lower(): value for name, value in headers.items()}["content-type"]
    assert content_type == PROBLEM_MEDIA_TYPE, (status, content_type, body)
    document: dict[str, Any] = json.loads(body)
    assert set(document) >= MEMBERS and set(document) <= MEMBERS | EXTENSIONS, document
    assert document["status"] == status, document
    assert document["type"] == f"{TYPE_PREFIX}{document['code']}", document
    assert document["title"] == PROBLEM_TITLES[document["code"]], document
    assert isinstance(document["detail"], str) and document["detail"], document
    if document["code"] in ("validation_failed", "json_invalid"):
        errors = document["errors"]
        assert errors and all({"field", "message", "type"} == set(error) for error in errors), document
    if status == 503:
        assert int({name.lower(): value for name, value in headers.items()}["retry-after"]) > 0
    return document


def problem(response: Any, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """``problem_of`` an httpx/requests response; with ``status`` and ``code`` checked too."""
    document = problem_of(response.status_code, dict(response.headers), response.content)
    assert status is None or response.status_code == status, (response.status_code, document)
    assert code is None or document["code"] == code, document
    return document
