"""The index template against the OpenSearch API specification (``../shared/schemas``), through
``indices.put_index_template`` as a client sends it: slow in Python jsonschema (about 40 s for
one nested field), hence here rather than in tests/unit (which checks the field's parts)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import opensearch_spec
from tests.unit.test_opensearch_bodies import LAYOUT

pytestmark = pytest.mark.integration


def cut_down(fields: tuple[str, ...]) -> dict[str, Any]:
    """The index template with only ``fields`` in its mapping."""
    body = copy.deepcopy(LAYOUT.template_body())
    properties = body["template"]["mappings"]["properties"]
    body["template"]["mappings"]["properties"] = {name: properties[name] for name in fields}
    return body


def test_the_template_with_the_appearances_field_follows_the_api_specification() -> None:
    body = cut_down(("appearances",))
    validator = opensearch_spec.request_body("indices.put_index_template")

    assert opensearch_spec.errors(validator, body) == []
    assert opensearch_spec.errors(validator, {**body, "template": {"mappings": {"dynamic": "strict_"}}})
