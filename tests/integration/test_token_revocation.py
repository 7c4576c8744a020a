"""Revoked tokens (issue 25): signing out of the console, or ``scenedex token revoke``, puts the
token on the deny-list in Redis until its ``exp``; the API's bearer auth and the console's session
both refuse it with 401 from then on. With Redis unreachable the check fails closed (503).

Real Postgres and Redis (the job harness), the API and its console through FastAPI's TestClient,
the CLI through typer's runner on the same Redis database.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scenedex.adapters.token_denylist import RedisTokenDenylist
from scenedex.api import create_app
from scenedex.api.auth import revocation_id
from scenedex.api.console.session import CSRF_FIELD, SESSION_COOKIE, SIGN_IN_COOKIE, csrf_token_for
from scenedex.scripts.cli import app as cli_app
from tests.integration.test_api import JOBS, OWNER_A, SECRET, api_settings, bearer, make_token
from tests.job_harness import Harness
from tests.problems import problem

pytestmark = pytest.mark.integration


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = create_app(api_settings(harness), runtime=harness.runtime)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, token: str) -> None:
    """The console's sign-in form, as a browser sends it (double-submit CSRF cookie)."""
    assert client.get("/admin/sign-in").status_code == 200
    form = {"token": token, CSRF_FIELD: client.cookies[SIGN_IN_COOKIE], "next": "/admin/jobs"}
    signed_in = client.post("/admin/sign-in", data=form)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin/jobs", signed_in.text


def console_jobs(client: TestClient, token: str) -> Any:
    """``GET /admin/jobs`` with ``token`` as the session cookie."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token, path="/admin")
    return client.get("/admin/jobs")


def revoke_cli(*args: str, redis_url: str, stdin: str | None = None) -> Any:
    env = {"SCENEDEX_REDIS_URL": redis_url, "SCENEDEX_API__JWT_SECRET": SECRET}
    return CliRunner().invoke(cli_app, ["token", "revoke", *args], env=env, input=stdin)


def test_sign_out_revokes_the_token_for_the_api_and_the_console(client: TestClient, harness: Harness) -> None:
    token = make_token(OWNER_A, ("admin",), exp_s=600)  # no jti: revoked by its claims' hash
    other = make_token(OWNER_A, ("admin",), exp_s=600, jti="another-session")
    assert client.get(JOBS, headers=bearer(token)).status_code == 200

    sign_in(client, token)
    assert client.get("/admin/jobs").status_code == 200
    signed_out = client.post("/admin/sign-out", data={CSRF_FIELD: csrf_token_for(token)})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/admin/sign-in"

    refused = client.get(JOBS, headers=bearer(token))
    assert problem(refused, 401, "unauthorized")["detail"] == "token revoked"
    assert refused.headers["www-authenticate"] == "Bearer"
    page = console_jobs(client, token)  # the cookie kept (or copied) after signing out
    assert page.status_code == 303 and page.headers["location"].startswith("/admin/sign-in?")
    assert "revoked" in page.headers["location"]
    client.cookies.clear()
    again = client.get("/admin/sign-in")
    assert again.status_code == 200
    form = {"token": token, CSRF_FIELD: client.cookies[SIGN_IN_COOKIE], "next": "/admin"}
    assert client.post("/admin/sign-in", data=form).status_code == 401  # cannot sign in with it again

    # Only that token: another session's token still works; the entry expires with the token.
    assert client.get(JOBS, headers=bearer(other)).status_code == 200
    assert console_jobs(client, other).status_code == 200
    [key] = harness.redis.keys(f"{RedisTokenDenylist.PREFIX}*")
    assert 590 <= harness.redis.ttl(key) <= 600


def test_scenedex_token_revoke_then_the_api_refuses_the_token(client: TestClient, harness: Harness) -> None:
    redis_url = harness.runtime.settings.redis_url
    minted = CliRunner().invoke(
        cli_app, ["token", "--json", "--ttl", "300"], env={"SCENEDEX_API__JWT_SECRET": SECRET}
    )
    assert minted.exit_code == 0, minted.output
    body = json.loads(minted.output)
    token = body["token"]
    assert body["jti"] and jwt.decode(token, options={"verify_signature": False})["jti"] == body["jti"]
    assert client.get(JOBS, headers=bearer(token)).status_code == 200

    revoked = revoke_cli(token, redis_url=redis_url)
    assert revoked.exit_code == 0, revoked.output
    assert problem(client.get(JOBS, headers=bearer(token)), 401)["detail"] == "token revoked"
    assert console_jobs(client, token).status_code == 303

    # From stdin (kept out of the shell's history), and as JSON.
    second = make_token(OWNER_A, ("admin",), exp_s=120)
    assert client.get(JOBS, headers=bearer(second)).status_code == 200
    result = revoke_cli("-", "--json", redis_url=redis_url, stdin=second + "\n")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["revoked"] is True and 0 < answer["expires_in_s"] <= 120
    assert client.get(JOBS, headers=bearer(second)).status_code == 401

    # An expired token needs no entry; what is not a token is a usage error.
    expired = revoke_cli(make_token(exp_s=-5), "--json", redis_url=redis_url)
    assert expired.exit_code == 0 and json.loads(expired.output)["revoked"] is False
    assert revoke_cli("not-a-token", redis_url=redis_url).exit_code == 2
    assert revoke_cli(redis_url=redis_url).exit_code == 2  # neither a token nor --jti
    assert revoke_cli(token, "--jti", "x", redis_url=redis_url).exit_code == 2  # both


def test_revoking_a_jti_refuses_every_token_that_carries_it(client: TestClient, harness: Harness) -> None:
    redis_url = harness.runtime.settings.redis_url
    first, second = (make_token(OWNER_A, ("admin",), exp_s=s, jti="leaked-7") for s in (60, 600))
    kept = make_token(OWNER_A, ("admin",), exp_s=600, jti="leaked-8")
    result = revoke_cli("--jti", "leaked-7", redis_url=redis_url)
    assert result.exit_code == 0, result.output
    assert client.get(JOBS, headers=bearer(first)).status_code == 401
    assert client.get(JOBS, headers=bearer(second)).status_code == 401
    assert client.get(JOBS, headers=bearer(kept)).status_code == 200
    # By default the entry lasts as long as any token may (SCENEDEX_API__MAX_TOKEN_LIFETIME_S).
    [key] = harness.redis.keys(f"{RedisTokenDenylist.PREFIX}*")
    assert harness.redis.ttl(key) > 600


def test_with_redis_unreachable_the_check_fails_closed(harness: Harness) -> None:
    no_redis = api_settings(harness).model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    token = make_token(OWNER_A, ("admin",), exp_s=300)
    with TestClient(create_app(no_redis, runtime=harness.runtime), follow_redirects=False) as client:
        down = client.get(JOBS, headers=bearer(token))
        assert down.status_code == 503, down.text
        assert "token deny-list" in problem(down, 503, "unavailable")["detail"]
        assert client.get(JOBS).status_code == 401  # no token: refused before the deny-list
        assert console_jobs(client, token).status_code == 503
    result = revoke_cli(token, redis_url="redis://127.0.0.1:1/0")
    assert result.exit_code == 1 and "Redis" in result.output


def test_the_revocation_id_is_that_of_the_signed_claims_not_of_the_token_text() -> None:
    """ECDSA signatures are random (and malleable): the same claims signed twice are two token
    strings that both verify; revoking one must revoke the other."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    claims = {"sub": "u", "owner_id": str(uuid.uuid4()), "exp": int(time.time()) + 60}
    one, two = (jwt.encode(claims, key, algorithm="ES256") for _ in range(2))
    assert one != two and revocation_id(one) == revocation_id(two)
    assert revocation_id(jwt.encode({**claims, "jti": "j"}, key, algorithm="ES256")) == revocation_id(jti="j")
    assert revocation_id(one) != revocation_id(jwt.encode({**claims, "sub": "v"}, key, algorithm="ES256"))
