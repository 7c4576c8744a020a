"""``scenedex token``: mint a bearer token signed with the API's own HS256 secret, so an operator
can sign in to the admin console (or call the API) without an identity provider.

Exit codes as in ``common``: 2 when no signing secret is configured (an RS256-only API verifies
tokens of an identity provider; scenedex holds no private key) or the options are unusable.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import jwt
import typer

from scenedex.scripts.common import JsonOption, fail, print_json
from scenedex.settings import Settings

NIL_OWNER = uuid.UUID(int=0)
DEFAULT_TTL_S = 3600
SYMMETRIC_ALGORITHMS = ("HS256", "HS384", "HS512")

TOKEN_EPILOG = (
    "Signs with SCENEDEX_API__JWT_SECRET (the API's HS256 secret) and the first HS algorithm of "
    "SCENEDEX_API__JWT_ALGORITHMS, with the configured audience and issuer; the token is checked "
    "with the API's own verifier before it is printed. Without a secret (RS256 only: tokens come "
    "from the identity provider) it exits 2. Prints the token alone, so: "
    "TOKEN=$(scenedex token --role admin). Paste it on the console's sign-in page (/admin)."
    "\n\n"
    '--json: {"token", "subject", "owner_id", "roles", "expires_at"}'
)


def token(
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="A role of the token; repeat for several (default: admin)."),
    ] = None,
    owner_id: Annotated[
        str | None, typer.Option("--owner-id", help="Owner (tenant) UUID claim (default: the nil UUID).")
    ] = None,
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl", min=1, help="Seconds until it expires (at most SCENEDEX_API__MAX_TOKEN_LIFETIME_S)."
        ),
    ] = DEFAULT_TTL_S,
    subject: Annotated[str, typer.Option(help="The 'sub' claim: who the token names.")] = "scenedex-operator",
    json_output: JsonOption = False,
) -> None:
    """Mint a signed bearer token (e.g. --role admin) for the console or the API."""
    from scenedex.api.auth import ApiConfigError, AuthError, TokenVerifier

    api = Settings().api
    secret = api.jwt_secret.get_secret_value() if api.jwt_secret else ""
    algorithm = next((a for a in api.jwt_algorithms if a in SYMMETRIC_ALGORITHMS), None)
    if not secret or algorithm is None:
        fail(
            "no signing secret: set SCENEDEX_API__JWT_SECRET (and keep HS256 in "
            "SCENEDEX_API__JWT_ALGORITHMS); with an RS256 public key only, tokens come from your "
            "identity provider",
            2,
        )
    if ttl > api.max_token_lifetime_s:
        fail(
            f"--ttl {ttl} is longer than SCENEDEX_API__MAX_TOKEN_LIFETIME_S ({api.max_token_lifetime_s} s)", 2
        )
    try:
        owner = uuid.UUID(owner_id) if owner_id else NIL_OWNER
    except ValueError:
        fail(f"--owner-id is not a UUID: {owner_id!r}", 2)
    roles = list(dict.fromkeys(role or ["admin"]))
    expires = int(time.time()) + ttl
    claims = {"sub": subject, "owner_id": str(owner), "roles": roles, "exp": expires}
    claims |= {k: v for k, v in (("aud", api.jwt_audience), ("iss", api.jwt_issuer)) if v}
    minted = jwt.encode(claims, secret, algorithm=algorithm)
    try:
        TokenVerifier(api).verify(minted)
    except (ApiConfigError, AuthError) as error:
        fail(str(error), 2)
    if json_output:
        print_json(
            {
                "token": minted,
                "subject": subject,
                "owner_id": str(owner),
                "roles": roles,
                "expires_at": expires,
            }
        )
    else:
        print(minted)
