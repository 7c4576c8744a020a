"""Strong ETags on the owner's videos and persons, ``If-None-Match`` and ``If-Match`` (issue 28).

A ``GET /v1/videos/{id}`` or ``GET /v1/persons/{id}`` answer carries ``ETag``: a strong tag,
the first 32 hex digits of the SHA-256 of the answer's JSON bytes, so it changes exactly when
the representation does (a status, a scene's text, a photo, a name), and ``Cache-Control:
private, no-cache`` (a cache keeps it per user and asks again each time). ``If-None-Match`` with
the current tag gets 304 with no body. ``PATCH /v1/persons/{id}`` and ``PUT
/v1/videos/{id}/scenes/{n}/texts`` honour ``If-Match`` (the person's, or the video's, current
ETag; ``*`` matches any): another tag is a 412 problem ``precondition_failed`` and nothing is
changed. Without ``If-Match`` the change is made as before (428 is not required). The check
reads the current representation just before the change, not in its transaction: two writers
that both send the old tag within milliseconds can both pass.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Header, HTTPException, Response
from pydantic import BaseModel

CACHE_CONTROL = "private, no-cache"

IfNoneMatchHeader = Annotated[
    str | None, Header(description="an ETag from an earlier answer: 304 with no body while it is current")
]
IfMatchHeader = Annotated[
    str | None,
    Header(description="the ETag the change is based on (or *): 412 if the resource changed since"),
]


def etag_of(body: bytes) -> str:
    """The strong ETag (quoted) of an answer's bytes."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 section 13.1.2: ``*`` or any listed tag; compared weakly (``W/`` ignored), as
    ``If-None-Match`` is."""
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def tagged(model: BaseModel, if_none_match: str | None) -> Response:
    """``model`` as a JSON answer with its ``ETag`` and ``Cache-Control``; 304 (no body) when
    ``if_none_match`` names its tag."""
    body = model.model_dump_json().encode()
    headers = {"ETag": etag_of(body), "Cache-Control": CACHE_CONTROL}
    if if_none_match is not None and etag_matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def require_match(if_match: str | None, current: BaseModel) -> None:
    """Raise a 412 unless ``if_match`` is absent, ``*`` or names ``current``'s ETag (strong
    comparison: a ``W/`` tag never matches)."""
    if if_match is None:
        return
    etag = etag_of(current.model_dump_json().encode())
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" not in tags and etag not in tags:
        raise HTTPException(412, f"If-Match {if_match[:100]!r} is not the current ETag {etag}: read it again")


def etag_responses(what: str) -> dict[int | str, dict[str, object]]:
    """The OpenAPI ``responses`` of a tagged GET: 200's and 304's headers."""
    headers = {
        "ETag": {"description": f"the {what}'s current strong ETag", "schema": {"type": "string"}},
        "Cache-Control": {"description": CACHE_CONTROL, "schema": {"type": "string"}},
    }
    return {
        200: {"headers": headers},
        304: {"description": "If-None-Match names the current ETag", "headers": headers},
    }
