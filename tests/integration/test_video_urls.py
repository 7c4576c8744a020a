"""Videos created from an https URL (``SCENEDEX_INGEST__*``): the API accepts only allow-listed
hosts (422 otherwise), the worker downloads through the SSRF guard of
``scenedex.adapters.url_fetch`` and fails the video, without retries, for a private address, an
oversized body or a 404, while a 5xx is transient. Real Postgres and Redis, an in-process worker
with fake embedders (``tests.job_harness``); the "remote" host is a plain HTTP server on
loopback, so the tests allow http and private addresses where they fetch."""

from __future__ import annotations

import http.server
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scenedex.domain.errors import TransientError
from scenedex.domain.model import VideoStatus
from scenedex.services import videos
from scenedex.settings import IngestSettings
from tests.integration.test_api import OWNER_A, Api
from tests.integration.test_videos import (
    BIKES,
    UPSTREAM,
    blobs_under,
    counts,
    idle,
    owner,
    post,
    videos_api,
    wait_status,
)
from tests.job_harness import Harness
from tests.loopback import serving

pytestmark = pytest.mark.integration

SUBTITLES = b"1\n00:00:00,500 --> 00:00:02,000\nfrom the subtitles file\n"


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """``http://127.0.0.1:<port>``: /bikes.mp4, /bikes.srt, /busy (503), else 404."""
    files = {"/bikes.mp4": BIKES.read_bytes() if BIKES.is_file() else b"", "/bikes.srt": SUBTITLES}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            status, body = (200, files[path]) if path in files else (404, b"")
            if path == "/busy":
                status, body = 503, b"later"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url


def configure(harness: Harness, **ingest: Any) -> None:
    """The services' ingest settings (the API validates with them, the worker downloads with them)."""
    services = harness.runtime.services
    assert services is not None
    services.settings = services.settings.model_copy(update={"ingest": IngestSettings(**ingest)})


@pytest.fixture
def api(harness: Harness) -> Iterator[Api]:
    yield from videos_api(harness)


LOOPBACK = {"allowed_url_hosts": ("127.0.0.1",), "allow_http": True, "allow_private_addresses": True}


def test_a_url_on_an_allowed_host_is_downloaded_ingested_and_searchable(api: Api, remote: str) -> None:
    configure(api.harness, **LOOPBACK)
    api.harness.start_worker()
    created = post(
        api,
        source_uri=f"{remote}/bikes.mp4?sig=abc",
        subtitles_uri=f"{remote}/bikes.srt",
        scenes=UPSTREAM[1:],
    )
    assert created.status_code == 202, created.text
    video = wait_status(api, created.json()["video_id"], "ready", "failed")
    assert video["status"] == "ready", video
    assert video["title"] == "bikes" and video["duration_s"] == pytest.approx(10.0)
    assert [s["summary"] for s in video["scenes"]] == ["a jump", "the finish line"]
    found = counts(api.harness.engine, video["video_id"])
    assert found["scenes"] == found["documents"] == 2
    names = [uri.rsplit("/", 1)[1] for uri in blobs_under(api, OWNER_A, video["video_id"])]
    assert names == ["00000.jpg", "00001.jpg", "source.mp4"]
    copy = api.harness.world.blobs.blobs[blobs_under(api, OWNER_A, video["video_id"])[-1]]
    assert copy == BIKES.read_bytes()
    hits = api.client.get("/v1/search", params={"text": "the finish line", "k": 1}, headers=owner(api))
    assert hits.json()["results"][0]["scene_id"] == video["scenes"][1]["scene_id"]

    detected = post(api, source_uri=f"{remote}/bikes.mp4", subtitles_uri=f"{remote}/bikes.srt")
    video = wait_status(api, detected.json()["video_id"], "ready", "failed")
    assert video["status"] == "ready" and len(video["scenes"]) == 6, video
    assert "from the subtitles file" in video["scenes"][0]["transcript"]


def test_urls_off_the_allow_list_are_422_at_the_api(api: Api, remote: str) -> None:
    def refused(**body: Any) -> str:
        answer = post(api, **body)
        assert answer.status_code == 422, (body, answer.text)
        return str(answer.json()["detail"])

    # Default settings: no URL host allowed, and the answer says how to allow one.
    assert "SCENEDEX_INGEST__ALLOWED_URL_HOSTS" in refused(source_uri="https://media.example.com/a.mp4")

    configure(api.harness, allowed_url_hosts=("media.example.com",))
    blob = api.harness.world.blobs.write(f"owners/{OWNER_A}/uploads/a.mp4", b"x")
    assert "SCENEDEX_INGEST__ALLOWED_URL_HOSTS" in refused(source_uri="https://other.example.com/a.mp4")
    assert "https" in refused(source_uri="http://media.example.com/a.mp4")  # http needs allow_http
    assert "subtitles_uri" in refused(source_uri=blob, subtitles_uri="https://evil.example.net/a.srt")
    keyframe = [{"start_s": 0, "end_s": 1, "keyframe_uri": "https://evil.example.net/k.jpg"}]
    assert "keyframe_uri" in refused(source_uri=blob, scenes=keyframe)
    for uri in ("ftp://media.example.com/a.mp4", "https://user@/a.mp4", "https:///a.mp4"):
        refused(source_uri=uri)
    accepted = post(api, source_uri="https://MEDIA.example.com/a.mp4", scenes=UPSTREAM)
    assert accepted.status_code == 202, accepted.text  # host names compare case-insensitively


@pytest.mark.parametrize(
    ("ingest", "path", "needle"),
    [
        # The host is allowed, but 127.0.0.1 is loopback: refused at the fetch.
        ({"allowed_url_hosts": ("127.0.0.1",), "allow_http": True}, "/bikes.mp4", "private, loopback"),
        ({**LOOPBACK, "max_source_bytes": 100_000}, "/bikes.mp4", "larger than 100000 bytes"),
        (LOOPBACK, "/gone.mp4", "answered 404"),
    ],
)
def test_refused_oversized_or_missing_downloads_fail_the_video_without_retries(
    api: Api, remote: str, ingest: dict[str, Any], path: str, needle: str
) -> None:
    configure(api.harness, **ingest)
    api.harness.start_worker()
    created = post(api, source_uri=f"{remote}{path}", scenes=UPSTREAM)
    assert created.status_code == 202, created.text
    failed = wait_status(api, created.json()["video_id"], "failed", "ready")
    assert failed["status"] == "failed" and needle in failed["error"], failed
    assert failed["error"].startswith("source: ") and "gave up" not in failed["error"]
    assert failed["scenes"] == [] and counts(api.harness.engine, failed["video_id"])["scenes"] == 0
    idle(api)  # nothing left to retry
    assert blobs_under(api, OWNER_A, failed["video_id"]) == []


def test_a_5xx_is_transient_the_video_stays_ingesting_for_the_retry(api: Api, remote: str) -> None:
    configure(api.harness, **LOOPBACK)
    created = post(api, source_uri=f"{remote}/busy", scenes=UPSTREAM)
    video_id = uuid.UUID(created.json()["video_id"])
    services = api.harness.runtime.services
    assert services is not None
    with pytest.raises(TransientError, match="503"):
        videos.ingest_queued_video(
            video_id,
            uow_factory=services.uow_factory,
            blobs=services.blobs,
            cutter=services.video_cutter(),
            download=services.source_download(),
        )
    # Not failed: the actor's retry (dramatiq's backoff) picks the ingesting video up again.
    assert videos.video_status(OWNER_A, video_id, uow_factory=services.uow_factory) is VideoStatus.INGESTING
