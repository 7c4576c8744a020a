"""The flow an integrating Python service writes with the client openapi-python-client generates
from ``docs/openapi.json``: no hand-written request, no cast. Run by
``tests/clients/test_python_client.py`` with the generator's own venv (the generated package
needs httpx, attrs and python-dateutil, which the generator brings), never with the project's:

    python python_flow.py PACKAGE_FOLDER BASE_URL TOKEN SOURCE_URI PHOTO_PATH

It prints one JSON object of what each call answered; the test asserts on it. Standard library
and the generated package only (it imports nothing of scenedex).
"""

from __future__ import annotations

import io
import json
import sys
import uuid
from pathlib import Path
from typing import Any


def main(folder: str, base_url: str, token: str, source_uri: str, photo_path: str) -> dict[str, Any]:
    sys.path.insert(0, folder)
    from scenedex_client import AuthenticatedClient  # type: ignore[import-not-found]
    from scenedex_client.api.persons import create_person, get_person  # type: ignore[import-not-found]
    from scenedex_client.api.search import search_scenes  # type: ignore[import-not-found]
    from scenedex_client.api.videos import create_video, get_video  # type: ignore[import-not-found]
    from scenedex_client.models import (  # type: ignore[import-not-found]
        CreatePersonForm,
        PersonChange,
        Problem,
        SceneIn,
        SearchResponse,
        VideoAccepted,
        VideoCreate,
        VideoOut,
    )
    from scenedex_client.types import File  # type: ignore[import-not-found]

    client = AuthenticatedClient(base_url=base_url, token=token)
    photo = Path(photo_path).read_bytes()
    out: dict[str, Any] = {}

    def form() -> Any:
        return CreatePersonForm(
            name="Eileen Collins", photos=[File(io.BytesIO(photo), "eileen.png", "image/png")]
        )

    created = create_person.sync_detailed(client=client, body=form(), idempotency_key="py-flow-1")
    replayed = create_person.sync_detailed(client=client, body=form(), idempotency_key="py-flow-1")
    assert isinstance(created.parsed, PersonChange), created.content
    assert isinstance(replayed.parsed, PersonChange), replayed.content
    out["person"] = {
        "status": int(created.status_code),
        "person_id": str(created.parsed.person_id),
        "photos": len(created.parsed.photos),
        "replay_status": int(replayed.status_code),
        "replay_person_id": str(replayed.parsed.person_id),
        "replayed_header": replayed.headers.get("idempotent-replayed"),
    }

    scenes = [SceneIn(start_s=0.0, end_s=3.0, summary="riders gather at a crossing")]
    video = create_video.sync_detailed(client=client, body=VideoCreate(source_uri=source_uri, scenes=scenes))
    assert isinstance(video.parsed, VideoAccepted), video.content
    out["video"] = {
        "status": int(video.status_code),
        "video_id": str(video.parsed.video_id),
        "location": video.headers.get("location"),
        "retry_after": video.headers.get("retry-after"),
    }
    got = get_video.sync_detailed(video.parsed.video_id, client=client)
    assert isinstance(got.parsed, VideoOut), got.content
    out["get_video"] = {"status": got.parsed.status.value, "etag": got.headers.get("etag")}

    found = search_scenes.sync(client=client, text="riders at a crossing", k=3)
    assert isinstance(found, SearchResponse), found
    out["search"] = {"results": len(found.results)}

    missing = get_person.sync(uuid.uuid4(), client=client)
    assert isinstance(missing, Problem), missing
    out["not_found"] = {"status": missing.status, "code": missing.code, "type": missing.type_}
    invalid = search_scenes.sync(client=client, text="x", k=0)
    assert isinstance(invalid, Problem), invalid
    out["invalid"] = {
        "status": invalid.status,
        "code": invalid.code,
        "fields": [error.field for error in invalid.errors or []],
    }
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
