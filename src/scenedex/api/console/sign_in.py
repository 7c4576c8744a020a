"""Signing in and out of the console, and the pages for a refused session (sign-in again,
403 without data, a refused CSRF token)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from scenedex.api.auth import AuthError, revoke_token
from scenedex.api.console.render import render
from scenedex.api.console.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    CsrfRefused,
    NotAnAdmin,
    PostDep,
    SignInRequired,
    clear_session_cookie,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_token,
    tokens_match,
    verify_admin_token,
)

router = APIRouter(prefix="/admin", include_in_schema=False)
HOME = "/admin"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path, never another site (``//host``)."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return HOME


def sign_in_page(
    request: Request, *, error: str | None = None, next_path: str | None = None, status_code: int = 200
) -> Response:
    """The sign-in form with a fresh (or the current) double-submit CSRF token."""
    token = sign_in_token(request)
    response = render(
        request,
        "sign_in.html",
        error=error,
        next_path=safe_next(next_path),
        sign_in_csrf=token,
        status_code=status_code,
    )
    set_sign_in_cookie(response, request, token)
    return response


@router.get("/sign-in")
def show_sign_in(request: Request, next: str | None = None, reason: str | None = None) -> Response:
    return sign_in_page(request, error=reason, next_path=next)


@router.post("/sign-in")
def sign_in(
    request: Request,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form()] = HOME,
) -> Response:
    """Verify the pasted token as the API does; an admin's goes into the session cookie."""
    if not tokens_match(csrf_token, request.cookies.get(SIGN_IN_COOKIE, "")):
        return sign_in_page(
            request, error="the form expired; paste the token again", next_path=next, status_code=403
        )
    token = token.strip().removeprefix("Bearer ").strip()
    try:
        verify_admin_token(request.app.state.verifier, token)
    except AuthError as error:
        return sign_in_page(request, error=str(error), next_path=next, status_code=401)
    except NotAnAdmin:
        return forbidden_page(request)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(SIGN_IN_COOKIE, path="/admin")
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: PostDep) -> Response:
    """Revoke the session's token (on the deny-list until its ``exp``: refused by the API and
    the console from now on, a copy of it included), then drop the cookie. Redis unreachable:
    the session check before fails closed (503), nothing is signed out."""
    verifier = request.app.state.verifier
    if verifier.denylist is not None:
        max_lifetime_s = request.app.state.settings.api.max_token_lifetime_s
        revoke_token(verifier.denylist, request.cookies[SESSION_COOKIE], max_lifetime_s=max_lifetime_s)
    response = RedirectResponse("/admin/sign-in", status_code=303)
    clear_session_cookie(response, request)
    return response


def forbidden_page(request: Request) -> Response:
    """The 403 page: the token is valid but not an admin's; it shows nothing else and drops the
    session cookie."""
    response = render(request, "forbidden.html", status_code=403)
    clear_session_cookie(response, request)
    return response


async def on_sign_in_required(request: Request, error: Exception) -> Response:
    """No (valid) session: the sign-in page for a page, a 401 for a script's poll."""
    assert isinstance(error, SignInRequired)
    if request.headers.get("x-console-poll"):
        response: Response = Response("sign in again", status_code=401)
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target} if request.method == "GET" else {}
        if error.reason:
            query["reason"] = error.reason
        suffix = f"?{urlencode(query)}" if query else ""
        response = RedirectResponse(f"/admin/sign-in{suffix}", status_code=303)
    clear_session_cookie(response, request)
    return response


async def on_not_an_admin(request: Request, error: Exception) -> Response:
    return forbidden_page(request)


async def on_csrf_refused(request: Request, error: Exception) -> Response:
    return render(request, "error.html", title="Request refused", message=str(error), status_code=403)


ERROR_HANDLERS = {
    SignInRequired: on_sign_in_required,
    NotAnAdmin: on_not_an_admin,
    CsrfRefused: on_csrf_refused,
}
"""The console's exceptions and their pages, installed on the app by ``install_console``."""
