"""The flow an integrating Python service writes with the client openapi-python-client generates
from ``docs/openapi.json``: no hand-written request, no cast. Run by
``tests/clients/test_python_client.py`` with the generator's own venv (the generated package
needs httpx, attrs and python-dateutil, which the generator brings), never with the project's,
against a live ``scenedex api`` and ``scenedex worker``:

    python python_flow.py PACKAGE_FOLDER BASE_URL TOKEN SOURCE_URI KEYFRAME_URI PHOTO_PATH

The same flow as ``ts/flow.ts``: a person from a photo, created twice with one
``Idempotency-Key``, waited for until ``searchable``; a video by reference with the upstream cut
(three scenes, the second's keyframe given) waited for until ``ready``, its ETag and a 304;
text, person and image search; the keyframe and its 304; a 404 and a 422 read as ``Problem``;
both deletes. The video's POST and DELETE send ``X-Request-ID`` through a client made with that
header (``AuthenticatedClient(headers=...)``). It prints one JSON object of what each call
answered; the test asserts on it. A failed expectation of the flow itself (an answer of the
wrong kind, a wait timed out) exits 1 with its reason. Standard library and the generated
package (and httpx, which it is built on) only: it imports nothing of scenedex.

The generator's one gap: ``getKeyframe``'s ``image/jpeg`` answer is not parsed (it skips media
types other than JSON and ``application/octet-stream``), so the flow reads the JPEG from
``sync_detailed(...).content``, as the generated ``Response`` offers.
"""

from __future__ import annotations

import io
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

PHRASE = "a lighthouse keeper juggles jars of marmalade"
WAIT_S = 150.0
T = TypeVar("T")


def until(what: str, probe: Callable[[], T | None]) -> T:
    """``probe()`` every 0.25 s until it returns something; raises ``TimeoutError`` after
    ``WAIT_S`` seconds."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {WAIT_S} s waiting for {what}")


def main(
    folder: str, base_url: str, token: str, source_uri: str, keyframe_uri: str, photo_path: str
) -> dict[str, Any]:
    sys.path.insert(0, folder)
    import httpx
    from scenedex_client import AuthenticatedClient  # type: ignore[import-not-found]
    from scenedex_client.api.persons import (  # type: ignore[import-not-found]
        create_person,
        delete_person,
        get_person,
    )
    from scenedex_client.api.search import (  # type: ignore[import-not-found]
        get_keyframe,
        search_by_image,
        search_scenes,
    )
    from scenedex_client.api.videos import create_video, delete_video, get_video  # type: ignore[import-not-found]
    from scenedex_client.models import (  # type: ignore[import-not-found]
        CreatePersonForm,
        DeleteAccepted,
        PersonChange,
        PersonOut,
        Problem,
        SceneIn,
        SearchByImageBody,
        SearchResponse,
        VideoAccepted,
        VideoCreate,
        VideoOut,
        VideoStatus,
    )
    from scenedex_client.types import File  # type: ignore[import-not-found]

    def client_with(**headers: str) -> Any:
        """A client of the owner's token (timeout 60 s: a loaded machine) sending ``headers``."""
        timeout = httpx.Timeout(60.0)
        return AuthenticatedClient(base_url=base_url, token=token, headers=headers, timeout=timeout)

    client = client_with()
    photo = Path(photo_path).read_bytes()
    name = Path(photo_path).name
    out: dict[str, Any] = {}

    def upload() -> Any:
        return File(io.BytesIO(photo), name, "image/png")

    def hits(found: Any) -> list[dict[str, Any]]:
        assert isinstance(found, SearchResponse), found
        return [
            {
                "scene_id": str(hit.scene_id),
                "video_id": str(hit.video_id),
                "persons": [str(person.person_id) for person in hit.persons],
            }
            for hit in found.results
        ]

    # A person from a photo, twice with one Idempotency-Key: the second answer is the first's.
    def create() -> Any:
        form = CreatePersonForm(name="Eileen Collins", photos=[upload()])
        return create_person.sync_detailed(client=client, body=form, idempotency_key="py-flow-1")

    created, replayed = create(), create()
    assert isinstance(created.parsed, PersonChange), created.content
    assert isinstance(replayed.parsed, PersonChange), replayed.content
    person_id = created.parsed.person_id
    out["person"] = {
        "status": int(created.status_code),
        "person_id": str(person_id),
        "photos": len(created.parsed.photos),
        "replay_status": int(replayed.status_code),
        "replay_person_id": str(replayed.parsed.person_id),
        "replayed_header": replayed.headers.get("idempotent-replayed"),
    }

    def searchable() -> Any:
        got = get_person.sync(person_id, client=client)
        return got if isinstance(got, PersonOut) and got.searchable is True else None

    person = until("the person to be searchable", searchable)
    out["person_searchable"] = {"photos": [photo.status.value for photo in person.photos]}

    # A video by reference, with the upstream cut, its texts and the keyframe of one scene.
    # X-Request-ID: the id of the request, echoed (and on the lines of the jobs it enqueues).
    scenes = [
        SceneIn(start_s=0.0, end_s=3.0, transcript="here they come", summary="riders gather at a crossing"),
        SceneIn(
            start_s=3.0,
            end_s=6.5,
            keyframe_uri=keyframe_uri,
            visual_description="a portrait in a white flight suit",
            summary=PHRASE,
        ),
        SceneIn(start_s=6.5, end_s=10.0, visual_description="a busy street", summary="the riders leave"),
    ]
    body = VideoCreate(source_uri=source_uri, title="Bikes", external_id="py-bikes-1", scenes=scenes)
    traced = client_with(**{"X-Request-ID": "py-flow-video"})
    video = create_video.sync_detailed(client=traced, body=body)
    assert isinstance(video.parsed, VideoAccepted), video.content
    video_id = video.parsed.video_id
    out["video"] = {
        "status": int(video.status_code),
        "video_id": str(video_id),
        "location": video.headers.get("location"),
        "retry_after": video.headers.get("retry-after"),
        "request_id": video.headers.get("x-request-id"),
    }

    def ready() -> Any:
        got = get_video.sync(video_id, client=client)
        assert not (isinstance(got, VideoOut) and got.status == VideoStatus.FAILED), got
        return got if isinstance(got, VideoOut) and got.status == VideoStatus.READY else None

    indexed = until("the video to be ready", ready)
    face_scene = indexed.scenes[1].scene_id
    got = get_video.sync_detailed(video_id, client=client)
    etag = got.headers.get("etag", "")
    unchanged = get_video.sync_detailed(video_id, client=client, if_none_match=etag)
    out["ready"] = {
        "scenes": len(indexed.scenes),
        "face_scene": str(face_scene),
        "etag": etag,
        "not_modified": int(unchanged.status_code),
    }

    # The three searches.
    out["search"] = {
        "text": hits(search_scenes.sync(client=client, text=PHRASE, k=3)),
        "person": hits(search_scenes.sync(client=client, person_id=person_id, k=5)),
        "image": hits(search_by_image.sync(client=client, body=SearchByImageBody(image=upload()), k=3)),
    }

    # The keyframe of the scene with the face, then again with its ETag: 304.
    keyframe = get_keyframe.sync_detailed(face_scene, client=client)
    keyframe_tag = keyframe.headers.get("etag", "")
    cached = get_keyframe.sync_detailed(face_scene, client=client, if_none_match=keyframe_tag)
    out["keyframe"] = {
        "status": int(keyframe.status_code),
        "content_type": keyframe.headers.get("content-type"),
        "jpeg": list(keyframe.content[:3]),
        "etag": keyframe_tag,
        "cached_status": int(cached.status_code),
        "cached_bytes": len(cached.content),
    }

    # Problems: a 404 and a 422, as application/problem+json.
    missing = get_person.sync_detailed(uuid.UUID("00000000-0000-4000-8000-000000000000"), client=client)
    invalid = search_scenes.sync_detailed(client=client, text="x", k=0)
    for label, answer in (("not_found", missing), ("invalid", invalid)):
        problem = answer.parsed
        assert isinstance(problem, Problem), answer.content
        out[label] = {
            "status": int(answer.status_code),
            "content_type": answer.headers.get("content-type"),
            "code": problem.code,
            "problem_status": problem.status,
            "type": problem.type_,
            "fields": [error.field for error in problem.errors or []],
        }

    # Delete the video (the worker removes it: 404 once done), then the person.
    # X-Request-ID again: the worker's line about the deletion carries it (the test reads its log).
    deleting = client_with(**{"X-Request-ID": "py-flow-delete"})
    deleted = delete_video.sync_detailed(video_id, client=deleting)
    assert isinstance(deleted.parsed, DeleteAccepted), deleted.content

    def video_gone() -> int | None:
        status = int(get_video.sync_detailed(video_id, client=client).status_code)
        return status if status == 404 else None

    gone = until("the video to be deleted", video_gone)
    deleted_person = delete_person.sync_detailed(person_id, client=client)
    person_gone = get_person.sync_detailed(person_id, client=client)
    out["delete"] = {
        "video_status": int(deleted.status_code),
        "video_location": deleted.headers.get("location"),
        "video_gone": gone,
        "person_status": int(deleted_person.status_code),
        "person_gone": int(person_gone.status_code),
    }
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:7])))
