"""The record states (fingerprint, input hash) of an owner's scene documents in one index: by
id in chunks (``mget``), or every document of the owner (``scan``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from opensearchpy import helpers

from scenedex.domain.model import RecordState

MGET_CHUNK = 1000
SCAN_PAGE = 5000


def get_states(client: Any, index: str, owner: str, ids: Sequence[str]) -> dict[uuid.UUID, RecordState]:
    """The states of the owner's documents ``ids`` in ``index`` (another owner's are left out)."""
    states: dict[uuid.UUID, RecordState] = {}
    for start in range(0, len(ids), MGET_CHUNK):
        response = client.mget(
            index=index,
            body={"ids": list(ids[start : start + MGET_CHUNK])},
            _source_includes=["owner_id", "fingerprint", "input_hash"],
        )
        for doc in response["docs"]:
            source = doc.get("_source")
            if doc.get("found") and source and source.get("owner_id") == owner:
                states[uuid.UUID(doc["_id"])] = RecordState(source["fingerprint"], source["input_hash"])
    return states


def scan_states(client: Any, index: str, owner: str) -> dict[uuid.UUID, RecordState]:
    """The states of every document of the owner in ``index``."""
    hits = helpers.scan(
        client,
        index=index,
        query={"query": {"term": {"owner_id": owner}}},
        size=SCAN_PAGE,
        _source_includes=["fingerprint", "input_hash"],
    )
    return {
        uuid.UUID(hit["_id"]): RecordState(hit["_source"]["fingerprint"], hit["_source"]["input_hash"])
        for hit in hits
    }
