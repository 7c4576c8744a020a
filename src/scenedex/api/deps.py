"""FastAPI dependencies, as ``Annotated`` aliases: the app's job runtime (``app.state.runtime``,
from ``create_app``), its services, and the authenticated caller (any role, or admin)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scenedex.api.auth import AuthError, Principal, TokenVerifier
from scenedex.application import JobRuntime, Services
from scenedex.domain.jobs import JobTrigger
from scenedex.services.persons import Reprocessing, reprocess_owner

log = logging.getLogger("scenedex.api")

bearer = HTTPBearer(
    auto_error=False,
    description="JWT with claims sub, owner_id (UUID), roles (list; 'admin' for /v1/admin) and exp",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_runtime(request: Request) -> JobRuntime:
    """The job runtime the app was created with."""
    runtime: JobRuntime = request.app.state.runtime
    return runtime


def get_services(request: Request) -> Services:
    """The services of the app's runtime."""
    services: Services = request.app.state.services
    return services


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller; 401 (with ``WWW-Authenticate: Bearer``) without a valid bearer token."""
    if credentials is None:
        raise HTTPException(401, "missing bearer token", headers=_CHALLENGE)
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return verifier.verify(credentials.credentials)
    except AuthError as error:
        raise HTTPException(401, str(error), headers=_CHALLENGE) from None


CallerDep = Annotated[Principal, Depends(get_principal)]


def require_admin(caller: CallerDep) -> Principal:
    """The caller if it has the admin role; 403 otherwise."""
    if not caller.is_admin:
        raise HTTPException(403, "the admin role is required")
    return caller


AdminDep = Annotated[Principal, Depends(require_admin)]
ServicesDep = Annotated[Services, Depends(get_services)]
RuntimeDep = Annotated[JobRuntime, Depends(get_runtime)]


def reprocess_after_change(
    owner_id: uuid.UUID, services: Services, runtime: JobRuntime, what: str
) -> Reprocessing | None:
    """The owner's reprocess for a change already committed (a person change, a face decision:
    ``reprocess_owner``, trigger ``api``), for the routes and the console alike; an unreachable
    broker does not fail the request (logged with ``what`` was saved; the job row, if created,
    is re-sent by the sweeper)."""
    try:
        return reprocess_owner(
            owner_id,
            runner=services.runner(),
            coordinator=runtime.coordinator,
            trigger=JobTrigger.API,
            follow_up=runtime.sender.send_refresh_owner,
        )
    except redis.exceptions.RedisError as error:
        log.warning("owner %s: %s saved, reprocess not enqueued: %s", owner_id, what, error)
        return None
