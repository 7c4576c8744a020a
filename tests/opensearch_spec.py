"""Validators for request bodies against the OpenSearch API specification bundled in
``../shared/schemas/opensearch-openapi.strict.json`` (OpenAPI 3.1, JSON Schema 2020-12; the
"strict" bundle refuses undeclared fields in most places, see ``../shared/schemas/README.md``).

``request_body(name)`` validates a body of ``components/requestBodies/{name}``;
``schema(name)`` one of ``components/schemas/{name}``.

The validators are jsonschema-rs's (the Rust validator schemathesis already depends on), not the
Python ``jsonschema`` package's: a whole index template takes about 20 ms to validate in Rust
against about a minute in Python (measured on the 2-core Intel Xeon with AMX, issue 27), so the
tests validate the whole template rather than cut-down ones."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema_rs
import pytest

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "schemas" / "opensearch-openapi.strict.json"
URI = "urn:opensearch-api-specification"

Validator = jsonschema_rs.Draft202012Validator


@functools.cache
def _registry() -> jsonschema_rs.Registry:
    if not SPEC.is_file():
        pytest.skip(f"the OpenSearch API specification {SPEC} is not present")
    return jsonschema_rs.Registry([(URI, json.loads(SPEC.read_text()))])


@functools.cache
def _validator(pointer: str) -> Validator:
    return Validator({"$ref": f"{URI}#{pointer}"}, registry=_registry())


def request_body(name: str, media_type: str = "application/json") -> Validator:
    """The validator of the ``name`` request body (e.g. ``search``, ``bulk`` with
    ``application/x-ndjson``: a list of action and source lines)."""
    return _validator(f"/components/requestBodies/{name}/content/{media_type.replace('/', '~1')}/schema")


def schema(name: str) -> Validator:
    """The validator of ``components/schemas/{name}`` (e.g. ``_common.mapping___NestedProperty``)."""
    return _validator(f"/components/schemas/{name}")


def errors(validator: Validator, body: object) -> list[str]:
    """The validation errors of ``body`` (empty: valid), as messages."""
    return [error.message for error in validator.iter_errors(body)]
