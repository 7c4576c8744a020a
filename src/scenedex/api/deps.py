"""FastAPI dependencies, as ``Annotated`` aliases: the application whose use cases the routes
call (``app.state.application``, from ``create_app``) and the authenticated caller (any role,
or admin)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scenedex.api.auth import AuthError, Principal, TokenVerifier
from scenedex.application import Application
from scenedex.domain.jobs import JobTrigger
from scenedex.services.persons import Reprocessing

log = logging.getLogger("scenedex.api")

bearer = HTTPBearer(
    auto_error=False,
    description="JWT with claims sub, owner_id (UUID), roles (list; 'admin' for /v1/admin) and exp",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_application(request: Request) -> Application:
    """The use cases of the app (``Application`` on its runtime and services)."""
    application: Application = request.app.state.application
    return application


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
AppDep = Annotated[Application, Depends(get_application)]


def reprocess_after_change(app: Application, owner_id: uuid.UUID, what: str) -> Reprocessing | None:
    """The owner's reprocess for a change already committed (a person change, a face decision:
    ``app.reprocess.after_change``, trigger ``api``), for the routes and the console alike; an
    unreachable broker does not fail the request (logged with ``what`` was saved; the job row, if
    created, is re-sent by the sweeper)."""
    try:
        return app.reprocess.after_change(owner_id, JobTrigger.API)
    except redis.exceptions.RedisError as error:
        log.warning("owner %s: %s saved, reprocess not enqueued: %s", owner_id, what, error)
        return None
