"""Validators for request bodies against the OpenSearch API specification bundled in
``../shared/schemas/opensearch-openapi.strict.json`` (OpenAPI 3.1, JSON Schema 2020-12; the
"strict" bundle refuses undeclared fields in most places, see ``../shared/schemas/README.md``).

``request_body(name)`` validates a body of ``components/requestBodies/{name}``;
``schema(name)`` one of ``components/schemas/{name}``. Whole index templates are slow to
validate in Python (about a minute), so the tests validate cut-down bodies."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "schemas" / "opensearch-openapi.strict.json"
URI = "urn:opensearch-api-specification"


@functools.cache
def _registry() -> Registry:
    if not SPEC.is_file():
        pytest.skip(f"the OpenSearch API specification {SPEC} is not present")
    contents = json.loads(SPEC.read_text())
    return Registry().with_resource(URI, Resource(contents=contents, specification=DRAFT202012))


def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{URI}#{pointer}"}, registry=_registry())


def request_body(name: str, media_type: str = "application/json") -> Draft202012Validator:
    """The validator of the ``name`` request body (e.g. ``search``, ``bulk`` with
    ``application/x-ndjson``: a list of action and source lines)."""
    return _validator(f"/components/requestBodies/{name}/content/{media_type.replace('/', '~1')}/schema")


def schema(name: str) -> Draft202012Validator:
    """The validator of ``components/schemas/{name}`` (e.g. ``_common.mapping___NestedProperty``)."""
    return _validator(f"/components/schemas/{name}")


def errors(validator: Draft202012Validator, body: object) -> list[str]:
    """The validation errors of ``body`` (empty: valid), as messages."""
    return [error.message for error in validator.iter_errors(body)]
