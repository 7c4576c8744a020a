"""``scenedex token``: the token it prints passes the API's own verifier with the roles, owner and
lifetime asked for; without a signing secret, or asked for too long a lifetime, it is a usage
error (exit 2) with a one-line message."""

from __future__ import annotations

import json
import time
import uuid

from typer.testing import CliRunner

from scenedex.api.auth import TokenVerifier
from scenedex.scripts.cli import app
from scenedex.settings import ApiSettings

SECRET = "test-secret-for-hs256-at-least-32-bytes-long"


def run(*args: str, **env: str) -> object:
    base = {"SCENEDEX_API__JWT_SECRET": "", "SCENEDEX_API__JWT_PUBLIC_KEY": ""}
    return CliRunner().invoke(app, ["token", *args], env={**base, **env})


def test_the_minted_token_verifies_as_an_admin_of_the_owner() -> None:
    owner = uuid.uuid4()
    result = run("--role", "admin", "--owner-id", str(owner), "--ttl", "120", SCENEDEX_API__JWT_SECRET=SECRET)
    assert result.exit_code == 0, result.output
    principal = TokenVerifier(ApiSettings(jwt_secret=SECRET)).verify(result.output.strip())
    assert principal.is_admin and principal.owner_id == owner and principal.roles == {"admin"}


def test_json_output_names_the_expiry() -> None:
    result = run("--json", "--ttl", "60", SCENEDEX_API__JWT_SECRET=SECRET)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["roles"] == ["admin"] and body["owner_id"] == str(uuid.UUID(int=0))
    assert time.time() < body["expires_at"] <= time.time() + 61


def test_without_a_secret_or_with_too_long_a_ttl_it_is_a_usage_error() -> None:
    result = run("--role", "admin")
    assert result.exit_code == 2 and "SCENEDEX_API__JWT_SECRET" in result.output
    result = run("--ttl", str(10**7), SCENEDEX_API__JWT_SECRET=SECRET)
    assert result.exit_code == 2 and "MAX_TOKEN_LIFETIME_S" in result.output
