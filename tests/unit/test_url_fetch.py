"""The SSRF guard of ``scenedex.adapters.url_fetch`` (shared by the embedding service and the
video ingest) against a plain HTTP server on loopback: allow-listed hosts only, private
addresses refused unless allowed, the Host header kept, no redirects, the size cap (declared and
streamed), and which failures are transient."""

from __future__ import annotations

import asyncio
import http.server
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scenedex.adapters.url_fetch import GuardedFetcher, UrlDownloader, UrlFetchError, UrlPolicy
from scenedex.domain.errors import BadInputError, TransientError
from tests.loopback import serving

BODY = bytes(range(256)) * 40  # 10 240 bytes


@pytest.fixture(scope="module")
def host() -> Iterator[tuple[str, list[str]]]:
    """``http://127.0.0.1:<port>`` and the Host headers it saw. Paths: /file (Content-Length),
    /chunked (no length), /redirect, /busy (503), /slow (answers after 2 s), else 404."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.headers.get("Host", ""))
            if self.path == "/file":
                self._answer(200, BODY, length=True)
            elif self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(BODY), 1024):
                    part = BODY[start : start + 1024]
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/busy":
                self._answer(503, b"try later", length=True)
            elif self.path == "/slow":
                time.sleep(2)
                self._answer(200, BODY, length=True)
            else:
                self._answer(404, b"", length=True)

        def _answer(self, status: int, body: bytes, *, length: bool) -> None:
            self.send_response(status)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url, seen


def policy(**changes: Any) -> UrlPolicy:
    base: dict[str, Any] = {
        "max_bytes": 1_000_000,
        "timeout_s": 5.0,
        "allowed_hosts": ("127.0.0.1", "localhost"),
        "allow_private_addresses": True,
        "hosts_setting": "SCENEDEX_TEST__HOSTS",
    }
    return UrlPolicy(**(base | changes))


def fetch(url: str, **changes: Any) -> bytes:
    async def run() -> bytes:
        fetcher = GuardedFetcher(policy(**changes))
        try:
            return await fetcher.fetch(url)
        finally:
            await fetcher.close()

    return asyncio.run(run())


def refused(url: str, **changes: Any) -> UrlFetchError:
    with pytest.raises(UrlFetchError) as caught:
        fetch(url, **changes)
    return caught.value


def test_an_allowed_host_is_fetched_with_its_host_header(host: tuple[str, list[str]]) -> None:
    url, seen = host
    assert fetch(f"{url}/file") == BODY
    assert fetch(f"{url}/chunked") == BODY
    port = url.rsplit(":", 1)[1]
    assert fetch(f"http://localhost:{port}/file") == BODY
    assert seen[-1] == f"localhost:{port}"  # connected to the checked address, Host kept


def test_hosts_schemes_and_private_addresses_are_refused_before_any_request(
    host: tuple[str, list[str]],
) -> None:
    url, seen = host
    before = len(seen)
    private = refused(f"{url}/file", allow_private_addresses=False)
    assert private.code == "url_not_allowed" and "private" in str(private) and not private.transient
    other = refused("http://example.invalid/file")
    assert other.code == "url_not_allowed" and "SCENEDEX_TEST__HOSTS" in str(other)
    assert refused(f"{url}/file", schemes=("https",)).code == "url_not_allowed"
    for bad in ("file:///etc/passwd", "gopher://127.0.0.1/", "http:///nohost"):
        assert refused(bad).code == "url_not_allowed", bad
    metadata = refused(
        "http://169.254.169.254/latest/meta-data/",
        allowed_hosts=("169.254.169.254",),
        allow_private_addresses=False,
    )
    assert metadata.code == "url_not_allowed"
    assert len(seen) == before


def test_size_cap_declared_and_streamed(host: tuple[str, list[str]], tmp_path: Path) -> None:
    url, _ = host
    declared = refused(f"{url}/file", max_bytes=len(BODY) - 1)
    assert declared.code == "too_large" and not declared.transient
    streamed = refused(f"{url}/chunked", max_bytes=3000)
    assert streamed.code == "too_large"
    assert fetch(f"{url}/chunked", max_bytes=len(BODY)) == BODY

    target = tmp_path / "part"
    with pytest.raises(BadInputError, match="larger than 3000 bytes"):
        UrlDownloader(policy(max_bytes=3000))(f"{url}/chunked", target)
    assert target.stat().st_size <= 3000


def test_answers_and_timeouts_permanent_or_transient(host: tuple[str, list[str]], tmp_path: Path) -> None:
    url, _ = host
    assert (refused(f"{url}/missing").code, refused(f"{url}/missing").transient) == ("not_found", False)
    redirect = refused(f"{url}/redirect")
    assert redirect.code == "fetch_failed" and "redirect" in str(redirect) and not redirect.transient
    busy = refused(f"{url}/busy")
    assert busy.code == "fetch_failed" and "503" in str(busy) and busy.transient
    slow = refused(f"{url}/slow", timeout_s=0.2)
    assert slow.code == "fetch_timeout" and slow.transient
    whole = refused(f"{url}/slow", timeout_s=5.0, total_timeout_s=0.3)
    assert whole.code == "fetch_timeout" and whole.transient

    download = UrlDownloader(policy())
    assert download(f"{url}/file", tmp_path / "ok") == len(BODY)
    assert (tmp_path / "ok").read_bytes() == BODY
    with pytest.raises(TransientError, match="503"):
        download(f"{url}/busy", tmp_path / "busy")
    with pytest.raises(BadInputError, match="404"):
        download(f"{url}/missing", tmp_path / "missing")
