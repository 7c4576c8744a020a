"""Liveness and readiness (no authentication: they reveal nothing but reachability)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from scenedex.api.problems import problem
from scenedex.api.schemas import HealthResponse, Problem, ReadyResponse

router = APIRouter(tags=["health"])
_NIL_OWNER = uuid.UUID(int=0)


@router.get(
    "/health",
    response_model=HealthResponse,
    operation_id="getHealth",
    summary="Liveness: the process answers",
)
def health() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/ready",
    operation_id="getReadiness",
    response_model=ReadyResponse,
    summary="Readiness: database, Redis and search index reachable",
    responses={503: {"model": Problem, "description": "what is unreachable"}},
)
def ready(request: Request) -> Any:
    services = request.app.state.services
    checks = {
        "database": _check(lambda: _ping_database(services.engine)),
        "redis": _check(request.app.state.redis.ping),
        "search_index": _check(lambda: _ping_index(services.search_index)),
    }
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        return problem(
            503, f"not ready: {', '.join(failed)}", code="not_ready", instance="/ready", checks=checks
        )
    return ReadyResponse(checks=checks)


def _check(probe: Any) -> str:
    try:
        if probe() is False:
            return "error: not reachable"
    except Exception as error:  # any failure means not ready, with its reason
        return f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return "ok"


def _ping_database(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("select 1"))


def _ping_index(index: Any) -> Any:
    """``index.ping()`` when the adapter has one (OpenSearch), else a one-owner read."""
    ping = getattr(index, "ping", None)
    if callable(ping):
        return ping()
    index.states(_NIL_OWNER, None)
    return True
