"""``scenedex token``: mint a bearer token signed with the API's own HS256 secret, so an operator
can sign in to the admin console (or call the API) without an identity provider; ``scenedex token
revoke``: put a token (or every token with a ``jti``) on the deny-list the API checks.

Exit codes as in ``common``: 2 when no signing secret is configured (an RS256-only API verifies
tokens of an identity provider; scenedex holds no private key) or the options are unusable;
revoke: 2 for what is not a token, 1 when Redis cannot be reached.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Annotated

import jwt
import typer

from scenedex.domain.errors import DependencyUnavailableError
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
    '--json: {"token", "jti", "subject", "owner_id", "roles", "expires_at"}'
    "\n\n"
    "scenedex token revoke TOKEN (or - to read it from stdin, or --jti ID) revokes a token."
)
REVOKE_EPILOG = (
    "Puts the token on the deny-list in Redis (SCENEDEX_REDIS_URL) until its exp: the API and the "
    "console refuse it with 401 from then on, as signing out of the console does. The signature "
    "is not checked. --jti ID revokes every token carrying that jti, for --ttl seconds (default "
    "SCENEDEX_API__MAX_TOKEN_LIFETIME_S: as long as any such token can be valid). An expired "
    "token needs no entry (revoked: false). Exit 2 for what is not a token, 1 when Redis cannot "
    "be reached."
    "\n\n"
    '--json: {"revoked", "revocation_id", "expires_in_s"}'
)

token_app = typer.Typer(rich_markup_mode="rich")


@token_app.callback(invoke_without_command=True, epilog=TOKEN_EPILOG)
def token(
    ctx: typer.Context,
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
    """Mint a signed bearer token (e.g. --role admin) for the console or the API, or revoke one."""
    if ctx.invoked_subcommand is not None:
        return
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
    jti = uuid.uuid4().hex  # what `scenedex token revoke --jti` names
    claims = {"sub": subject, "owner_id": str(owner), "roles": roles, "exp": expires, "jti": jti}
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
                "jti": jti,
                "subject": subject,
                "owner_id": str(owner),
                "roles": roles,
                "expires_at": expires,
            }
        )
    else:
        print(minted)


@token_app.command("revoke", epilog=REVOKE_EPILOG)
def revoke(
    token_text: Annotated[
        str | None, typer.Argument(metavar="TOKEN", help="The token to revoke; - reads it from stdin.")
    ] = None,
    jti: Annotated[
        str | None, typer.Option("--jti", help="Revoke every token with this jti claim instead.")
    ] = None,
    ttl: Annotated[
        int | None,
        typer.Option(
            "--ttl", min=1, help="With --jti: seconds to refuse it (default: the longest lifetime)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke a token (or a jti): the API and the console refuse it until it expires."""
    from scenedex.api.auth import AuthError, revocation_id, revoke_token
    from scenedex.application.wiring import token_denylist

    if (token_text is None) == (jti is None):
        fail("give a TOKEN (or - for stdin) or --jti, not both", 2)
    if ttl is not None and jti is None:
        fail("--ttl goes with --jti (a token is revoked until its own exp)", 2)
    settings = Settings()
    max_lifetime_s = settings.api.max_token_lifetime_s
    denylist = token_denylist(settings)
    try:
        if jti is not None:
            token_id = revocation_id(jti=jti)
            seconds = float(ttl or max_lifetime_s)
            denylist.revoke(token_id, seconds)
        else:
            text = sys.stdin.read() if token_text == "-" else str(token_text)
            text = text.strip().removeprefix("Bearer ").strip()
            token_id = revocation_id(text)
            seconds = revoke_token(denylist, text, max_lifetime_s=max_lifetime_s)
    except AuthError as error:
        fail(str(error), 2)
    except DependencyUnavailableError as error:
        fail(str(error), 1)
    if json_output:
        print_json({"revoked": seconds > 0, "revocation_id": token_id, "expires_in_s": round(seconds, 3)})
    elif seconds > 0:
        print(f"revoked {token_id} for {seconds:.0f} s")
    else:
        print("the token has expired already; nothing to revoke")
