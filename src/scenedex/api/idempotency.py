"""``Idempotency-Key`` on the API's creates (issue 28; ``domain.idempotency``).

A route that creates takes the optional header (``IdempotencyKeyHeader``: 1 to 255 printable
ASCII characters, no space) and answers through ``answer_once``: without a key the request runs
as always; with one, the first request's 2xx answer is kept (per owner and key, for
``SCENEDEX_API__IDEMPOTENCY_TTL_S``) and the same request again gets it replayed, byte for byte
with its ``Location``/``Retry-After``, marked ``Idempotent-Replayed: true``, with nothing done
twice (no second person, photo or reprocess job). The same key with another route or request
is a 422 problem ``idempotency_key_reused``; while the first request runs, a 409 ``conflict``.
An error answer is not kept. The route says what identifies its request (``parts``: the parsed
input, a photo as its SHA-256), so a retry with another multipart boundary or JSON key order is
the same request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Response
from pydantic import BaseModel

from scenedex.application import Application
from scenedex.domain.idempotency import MAX_KEY_CHARS, StoredAnswer
from scenedex.services.idempotency import fingerprint

REPLAYED_HEADER = "Idempotent-Replayed"
_KEPT_HEADERS = ("Location", "Retry-After")

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_CHARS,
        pattern=r"^[!-~]+$",
        description="a key of the caller's choosing (e.g. a UUID) for this one request: sent again "
        "with the same request, the first answer is replayed and nothing is done twice; with "
        "another request, 422 idempotency_key_reused",
    ),
]


def answer_once(
    app: Application,
    owner_id: uuid.UUID,
    key: str | None,
    route: str,
    parts: Any,
    run: Callable[[], tuple[int, BaseModel, dict[str, str]]],
) -> Response:
    """The JSON answer of ``run()`` (status, body model, headers), run at most once per ``key``
    of ``owner_id`` for the request ``route`` + ``parts`` (see the module)."""
    ran = False

    def stored() -> StoredAnswer:
        nonlocal ran
        ran = True
        status, body, headers = run()
        kept = {name: value for name, value in headers.items() if name in _KEPT_HEADERS}
        return StoredAnswer(status, body.model_dump_json(), kept)

    answer = (
        stored() if key is None else app.idempotency.once(owner_id, key, route, fingerprint(parts), stored)
    )
    response = Response(answer.body, status_code=answer.status, media_type="application/json")
    response.headers.update(answer.headers)
    if not ran:
        response.headers[REPLAYED_HEADER] = "true"
    return response
