"""The FastAPI app factory: ``create_app(settings, runtime=None)``.

The app is thin: routes parse and authorise, then call the domain (``ReprocessRunner.plan``,
``JobCoordinator``, ``Services.search``) and the use cases of ``scenedex.services`` (``enqueue``,
``videos``, ``persons``, ``face_clusters``), on the runtime in ``app.state``. Errors are always RFC 9457
problem details (``api.problems``: ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail``, ``instance``, ``code``; a validation 422 lists ``errors``), mapped here
rather than in the routes (field locations go through ``json_body.echoable``, so an answer
never fails to be written):

| error | status |
| --- | --- |
| missing, expired, badly signed or revoked token / not an admin | 401 / 403 |
| ``NotFoundError`` (unknown job, video, owner, person; or another owner's) | 404 |
| a method the path does not serve (``Allow``: every method of the path) | 405 |
| ``ActiveJobError`` (with ``active_job_id``), ``ConflictError``, a job state refusing the action | 409 |
| body over ``max_body_bytes`` (multipart: ``max_upload_bytes``), ``PayloadTooLargeError`` | 413 |
| ``UnsupportedMediaTypeError`` (an upload that is not an image) | 415 |
| invalid body or parameters, unknown fields, ``InvalidRequestError`` | 422 |
| a JSON body with ``NaN``/``Infinity``/``1e999``, a NUL or lone surrogate, deep nesting | 422 |
| database or Redis unreachable, transient errors, models unusable | 503 |
| anything else (a bug) | 500, logged |
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from scenedex.api.auth import ApiConfigError, TokenVerifier
from scenedex.api.console import install_console
from scenedex.api.contract import install_contract
from scenedex.api.headers import SecurityHeaders
from scenedex.api.json_body import echoable, json_body_problem, parsed_as_json
from scenedex.api.problems import field_errors, problem, validation_detail
from scenedex.api.request_id import HEADER, RequestId
from scenedex.api.routes import admin, face_clusters, health, owner, persons, search, videos, webhooks
from scenedex.application import Application, JobRuntime, build_services
from scenedex.application.wiring import token_denylist
from scenedex.domain.errors import (
    ConflictError,
    InvalidRequestError,
    KindUnavailableError,
    ModelLoadError,
    NotFoundError,
    PayloadTooLargeError,
    PermanentError,
    ScenedexError,
    TransientError,
    UnsupportedMediaTypeError,
)
from scenedex.domain.idempotency import IdempotencyKeyReusedError
from scenedex.domain.jobs import ActiveJobError
from scenedex.domain.logcontext import log_context
from scenedex.settings import Settings
from scenedex.tasks.queue import build_runtime

log = logging.getLogger("scenedex.api")

__all__ = ["ApiConfigError", "create_app"]


def create_app(settings: Settings, runtime: JobRuntime | None = None) -> FastAPI:
    """The API on ``settings``. ``runtime`` (a ``JobRuntime`` with services; tests pass one
    with fake embedders) defaults to one the composition root builds from ``settings``
    (``build_runtime(settings, build_services(settings))``, which installs the broker unless one is
    set): models load lazily on first use, nothing connects before the first request. Routes
    reach its use cases through ``app.state.application`` (``api.deps.AppDep``).

    Raises ``ApiConfigError`` when no JWT key is configured (unless ``allow_insecure_dev``), a
    key is unusable, or ``runtime`` has no services: the API refuses to start rather than run
    open.
    """
    verifier = TokenVerifier(settings.api, denylist=token_denylist(settings))
    if runtime is None:
        runtime = build_runtime(settings, build_services(settings))
    if runtime.services is None:
        raise ApiConfigError("the API needs a runtime with services (build_runtime(settings, services))")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            app.state.redis.close()

    app = FastAPI(
        title="scenedex admin API",
        version="1",
        summary="Enqueue and follow embedding reprocess jobs; owner-scoped embed and search.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = verifier
    app.state.runtime = runtime
    app.state.services = runtime.services
    app.state.application = Application(runtime.services, runtime)
    app.state.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(owner.router)
    app.include_router(videos.router)
    app.include_router(search.router)
    app.include_router(persons.router)
    app.include_router(face_clusters.router)
    app.include_router(webhooks.router)
    app.include_router(webhooks.admin_router)
    webhooks.install_webhook_docs(app)
    install_console(app)  # the admin console's pages under /admin
    _add_error_handlers(app)
    install_contract(app)
    app.add_middleware(JsonBodyGuard)  # inside BodySizeLimit, which bounds what it buffers
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.api.max_body_bytes,
        max_upload_bytes=settings.api.max_upload_bytes,
        large_bodies=frozenset({("POST", videos.router.prefix)}),
    )
    app.add_middleware(RequestId)  # around the body checks: their answers carry the id too
    app.add_middleware(SecurityHeaders)  # outermost: every answer of the app has its headers
    return app


def _status_of(error: Exception) -> int:
    if isinstance(error, (ActiveJobError, ConflictError)):
        return 409
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, PayloadTooLargeError):
        return 413
    if isinstance(error, UnsupportedMediaTypeError):
        return 415
    if isinstance(error, (ModelLoadError, TransientError, OperationalError, redis.exceptions.RedisError)):
        return 503
    if isinstance(error, (InvalidRequestError, PermanentError)):
        return 422
    return 500


def _domain_problem(error: Exception) -> tuple[str | None, str, dict[str, Any]]:
    """The ``code``, ``detail`` and extension members of a domain or adapter error."""
    if isinstance(error, ActiveJobError):
        return "active_job", str(error), {"active_job_id": str(error.active_job_id)}
    if isinstance(error, OperationalError):
        return "database_unavailable", "database unavailable", {}
    if isinstance(error, redis.exceptions.RedisError):
        return "broker_unavailable", "broker (Redis) unavailable", {}
    if isinstance(error, ModelLoadError):
        return "model_unavailable", str(error), {}
    if isinstance(error, IdempotencyKeyReusedError):
        return "idempotency_key_reused", str(error), {}
    if isinstance(error, KindUnavailableError):
        return error.type, str(error), {"kind": error.kind}
    return None, str(error), {}


def _add_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, error: Exception) -> Response:
        status = _status_of(error)
        code, detail, extensions = _domain_problem(error)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, error)
        return problem(status, detail, code=code, instance=request.url.path, **extensions)

    async def invalid_request(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = field_errors(error.errors())
        return problem(
            422, validation_detail(errors), code="validation_failed", instance=request.url.path, errors=errors
        )

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        detail = error.detail if isinstance(error.detail, str) else str(echoable(error.detail))
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(error.status_code, detail, instance=request.url.path, headers=headers)

    async def unexpected(request: Request, error: Exception) -> Response:
        """A bug: logged; answered by Starlette's outermost middleware, outside ``RequestId``,
        so the id is set here."""
        request_id = getattr(request.state, "request_id", None)
        with log_context(request_id=request_id):
            log.exception("%s %s failed", request.method, request.url.path)
        headers = {HEADER: request_id} if request_id else None
        return problem(500, "internal server error", instance=request.url.path, headers=headers)

    for kind in (ScenedexError, OperationalError, redis.exceptions.RedisError):
        app.add_exception_handler(kind, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The methods that some route serves at the request's path, each probed through the
    router's own matching on a fresh scope (FastAPI's included routers do not list their
    routes' methods, and the request's scope already carries the route that answered)."""
    allowed = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "headers": [],
            "query_string": b"",
        }
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def replaying(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` (already read by a middleware) as one
    ``http.request`` message, then defers to the real ``receive`` (disconnects)."""
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` (a ``multipart/form-data`` upload:
    ``max_upload_bytes``) gets 413 JSON before the app sees it, whether announced by
    ``Content-Length`` or streamed in chunks (bodies are buffered up to the limit, then
    replayed to the app). ``large_bodies`` (``(method, path)`` pairs) are held to
    ``max_upload_bytes`` whatever their content type: ``POST /v1/videos`` carries the upstream
    cut, up to ``MAX_SCENES`` scenes with their texts, which ``max_bytes`` could not hold."""

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        max_upload_bytes: int | None = None,
        large_bodies: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes or max_bytes
        self.large_bodies = large_bodies

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        upload = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        upload = upload or (scope["method"], scope["path"].rstrip("/")) in self.large_bodies
        limit = self.max_upload_bytes if upload else self.max_bytes
        length = headers.get(b"content-length")
        if length is not None and not length.isdigit():
            await problem(400, "invalid Content-Length", instance=scope["path"])(scope, receive, send)
            return
        if length is not None and int(length) > limit:
            await self._too_large(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _too_large(self, limit: int, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = problem(413, f"request body larger than {limit} bytes", instance=scope["path"])
        await response(scope, receive, send)


class JsonBodyGuard:
    """ASGI middleware: a body FastAPI would parse as JSON (``json_body.parsed_as_json``) that
    ``json_body.json_body_problem`` refuses (a non-finite number, a NUL or a lone surrogate,
    nesting deeper than ``MAX_JSON_DEPTH``...) gets a 422 problem ``json_invalid`` (one
    ``errors`` entry, field ``body``) before any route reads it: nothing is logged and the
    connection stays open. Other bodies reach the app unchanged. It buffers the body, so it
    sits inside ``BodySizeLimit``, which bounds it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not parsed_as_json(dict(scope.get("headers") or [])):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refused = json_body_problem(body) if body else None
        if refused is not None:
            errors = [{"field": "body", "message": f"invalid JSON body: {refused}", "type": "json_invalid"}]
            answer = problem(
                422, errors[0]["message"], code="json_invalid", instance=scope["path"], errors=errors
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)
