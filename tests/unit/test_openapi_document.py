"""``docs/openapi.json`` is the admin/owner API's OpenAPI document, as the app serves it: API
services in other languages generate their clients from it. Regenerate after changing a route
or a model: ``python -m scenedex.scripts.openapi > docs/openapi.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
SCALARS = ("string", "integer", "number", "boolean", "null")


def test_the_document_is_openapi_3_1_with_the_reprocess_union() -> None:
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.1")
    body = document["paths"]["/v1/admin/reprocess-embeddings"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ReprocessBody"}
    union = document["components"]["schemas"]["ReprocessBody"]
    assert union["discriminator"]["propertyName"] == "scope"
    assert set(union["discriminator"]["mapping"]) == {"video", "owner", "all"}


def test_every_operation_has_a_hand_chosen_operation_id() -> None:
    """Generated SDKs name their methods after ``operationId``: each one is chosen by hand
    (``operation_id=`` on the route), short and versionless, and unique; not FastAPI's default
    (``search_v1_search_get``), which carries the version and changes with the path."""
    document = json.loads(DOCUMENT.read_text())
    ids = [op.get("operationId", "") for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {sorted(ids)}"
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-zA-Z]+", operation_id), f"not a lowerCamelCase name: {operation_id!r}"
        assert "v1" not in operation_id.lower(), operation_id


def test_request_bodies_are_named_and_have_one_media_type_and_binary_parts() -> None:
    """No FastAPI ``Body_...`` schema names, one media type per request body, and binary parts
    as ``format: binary`` (not the ``contentMediaType`` some generators type as text); every
    query parameter is a scalar (an object-valued one is sent wrong by every generated client)."""
    document = json.loads(DOCUMENT.read_text())
    assert [name for name in document["components"]["schemas"] if name.startswith("Body_")] == []
    text = json.dumps(document)
    assert "contentMediaType" not in text
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            assert len(content) <= 1, f"{method.upper()} {path}: {list(content)}"
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                for variant in schema.get("anyOf", [schema]):
                    if "$ref" in variant:
                        variant = document["components"]["schemas"][variant["$ref"].rsplit("/", 1)[1]]
                    assert variant.get("type") in SCALARS, (method.upper(), path, parameter)
