"""The console's sign-in session and its CSRF tokens.

The session is the admin's bearer token itself, verified on every request by the API's own
``TokenVerifier`` (``app.state.verifier``): an expired, forged, revoked or non-admin token is
refused exactly as ``Authorization: Bearer`` would be; signing out revokes the token (the
deny-list in Redis, until its ``exp``), so a copy of the cookie is refused too. It lives in the
cookie ``SESSION_COOKIE``:
HttpOnly (no script reads it), ``SameSite=Strict`` (no other site's page sends it), path
``/admin``, ``Secure`` as ``ApiSettings.console_secure_cookie`` says (unset: when the request
came over https).

CSRF: every state-changing form carries ``csrf_token``, checked on every POST:

- signed in: ``csrf_token = HMAC-SHA256(key=<session cookie value>, msg=CSRF_CONTEXT)``, hex.
  Only a page that can read the HttpOnly cookie's value (none can) or that the server rendered
  for this session knows it; it changes with the session and needs no server-side state, so
  any number of API replicas agree.
- the sign-in form (no session yet): a double-submit token, a random value in the cookie
  ``SIGN_IN_COOKIE`` (HttpOnly, SameSite=Strict) that the form repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from starlette.responses import Response

from scenedex.api.auth import AuthError, Principal, TokenVerifier

SESSION_COOKIE = "scenedex_console"
SIGN_IN_COOKIE = "scenedex_console_sign_in"
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
CSRF_CONTEXT = b"scenedex-console-csrf-v1"
SIGN_IN_COOKIE_MAX_AGE_S = 3600


class SignInRequired(Exception):
    """No session, or its token no longer verifies (expired, forged): back to the sign-in page
    (``reason`` is shown there)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.reason = reason


class NotAnAdmin(Exception):
    """A valid token without the admin role: the 403 page, no data."""


class CsrfRefused(Exception):
    """A POST whose ``csrf_token`` is missing or wrong (403)."""


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in admin: who (``principal``) and the CSRF token of their forms."""

    principal: Principal
    csrf_token: str


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of the forms of the session whose cookie holds ``session_token``."""
    return hmac.new(session_token.encode(), CSRF_CONTEXT, hashlib.sha256).hexdigest()


def tokens_match(given: object, expected: str) -> bool:
    """``given`` (a form field) equals ``expected``, compared in constant time."""
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given, expected)


def verify_admin_token(verifier: TokenVerifier, token: str) -> Principal:
    """The admin named by ``token``; raises ``AuthError`` (not valid) or ``NotAnAdmin``."""
    principal = verifier.verify(token)
    if not principal.is_admin:
        raise NotAnAdmin(f"{principal.subject} has no admin role")
    return principal


def current_session(request: Request) -> ConsoleSession:
    """The signed-in admin of ``request``; raises ``SignInRequired`` or ``NotAnAdmin``."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    try:
        principal = verify_admin_token(request.app.state.verifier, token)
    except AuthError as error:
        raise SignInRequired(f"your session ended: {error}") from None
    return ConsoleSession(principal, csrf_token_for(token))


SessionDep = Annotated[ConsoleSession, Depends(current_session)]


async def checked_post(request: Request, session: SessionDep) -> ConsoleSession:
    """A signed-in admin's POST whose form carries the session's CSRF token; raises
    ``CsrfRefused`` otherwise (the form is parsed here; the route's ``Form`` fields reuse it)."""
    form = await request.form()
    if not tokens_match(form.get(CSRF_FIELD), session.csrf_token):
        raise CsrfRefused("the form's CSRF token is missing or wrong; reload the page and try again")
    return session


PostDep = Annotated[ConsoleSession, Depends(checked_post)]


def secure_cookies(request: Request) -> bool:
    """Whether the console's cookies get the ``Secure`` flag (see the module docstring)."""
    configured: bool | None = request.app.state.settings.api.console_secure_cookie
    return request.url.scheme == "https" if configured is None else configured


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Keep ``token`` in the session cookie until the token expires."""
    expires = jwt.decode(token, options={"verify_signature": False}).get("exp")
    max_age = max(int(expires - time.time()), 0) if isinstance(expires, int | float) else None
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure_cookies(request)
    )


def sign_in_token(request: Request) -> str:
    """The sign-in form's double-submit token: the one in the request's cookie, else a new one."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)


def set_sign_in_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        value,
        max_age=SIGN_IN_COOKIE_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
