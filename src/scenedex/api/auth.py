"""Bearer JWT authentication: who is calling, for which owner, with which roles.

Tokens are verified with PyJWT against the keys in ``ApiSettings``: HS256 (and HS384/HS512)
with ``jwt_secret``, RS256 (and the other asymmetric algorithms) with ``jwt_public_key``. The
key is chosen by the token's algorithm family and only configured algorithms are accepted, so an
HS token is never checked against the public key (RFC 8725 section 2.1). Claims: ``sub``
(user id), ``owner_id`` (tenant UUID), ``roles`` (list of strings; ``"admin"`` opens the admin
endpoints) and ``exp``, all required except ``roles`` (default: none). ``exp`` must be a JSON
number (PyJWT alone accepts a numeric string) no further ahead than
``ApiSettings.max_token_lifetime_s``, so a token minted to never expire is refused.

Revocation: a token whose ``revocation_id`` is on the deny-list (``TokenDenylist``: signing out
of the console, ``scenedex token revoke``) is refused like an expired one. The deny-list is
asked only after the signature and claims verified (a forged token never reaches Redis), and it
fails closed: while it cannot be read, ``verify`` raises ``DependencyUnavailableError`` (the API
answers 503) rather than accept a token that may have been revoked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from jwt.utils import base64url_decode

from scenedex.settings import ApiSettings

if TYPE_CHECKING:
    from scenedex.domain.revocation import TokenDenylist

log = logging.getLogger("scenedex.api")

ADMIN_ROLE = "admin"
MIN_SECRET_BYTES = 32
"""HS256 secrets shorter than this are refused at start (RFC 7518 section 3.2: at least the
hash size)."""

_SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_REQUIRED_CLAIMS = ["exp", "sub", "owner_id"]


class ApiConfigError(Exception):
    """The API cannot start with these settings (no key, bad key, unknown algorithm)."""


class AuthError(Exception):
    """A token is missing, malformed, expired, badly signed or lacks a claim (HTTP 401)."""


@dataclass(frozen=True)
class Principal:
    """The caller of a request: ``subject`` (user id), ``owner_id`` (the only owner whose data
    owner endpoints show) and ``roles``."""

    subject: str
    owner_id: uuid.UUID
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


class TokenVerifier:
    """Verifies bearer tokens against the configured keys.

    Raises ``ApiConfigError`` when built without any usable key (unless
    ``allow_insecure_dev``: signatures are then not checked, claims and expiry still are), with
    a secret shorter than ``MIN_SECRET_BYTES``, an unreadable public key or an unknown algorithm.
    ``denylist``: the revoked tokens (None: no token is checked against revocation, as in the
    token CLI's check of what it minted).
    """

    def __init__(self, settings: ApiSettings, denylist: TokenDenylist | None = None) -> None:
        self.denylist = denylist
        unknown = set(settings.jwt_algorithms) - _SYMMETRIC - _ASYMMETRIC
        if unknown:
            raise ApiConfigError(f"SCENEDEX_API__JWT_ALGORITHMS: unsupported {sorted(unknown)}")
        self._max_lifetime_s = settings.max_token_lifetime_s
        self._audience = settings.jwt_audience or None  # empty (as in a copied .env) = unset
        self._issuer = settings.jwt_issuer or None
        secret = (settings.jwt_secret.get_secret_value() if settings.jwt_secret else None) or None
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ApiConfigError(
                f"SCENEDEX_API__JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes; "
                "use e.g. `openssl rand -hex 32`"
            )
        public_key = _load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        self._keys: dict[str, Any] = {}
        for algorithm in settings.jwt_algorithms:
            key = secret if algorithm in _SYMMETRIC else public_key
            if key is not None:
                self._keys[algorithm] = key
        self.insecure = not self._keys
        if self.insecure and not settings.allow_insecure_dev:
            raise ApiConfigError(
                "no JWT key configured for the accepted algorithms "
                f"{list(settings.jwt_algorithms)}: set SCENEDEX_API__JWT_SECRET (HS256) or "
                "SCENEDEX_API__JWT_PUBLIC_KEY (RS256), or SCENEDEX_API__ALLOW_INSECURE_DEV=1 "
                "for local development only"
            )
        if self.insecure:
            log.warning(
                "INSECURE DEVELOPMENT MODE: SCENEDEX_API__ALLOW_INSECURE_DEV is set and no JWT key "
                "is configured; token signatures are NOT checked, anyone can call every endpoint. "
                "Never run this in production."
            )

    @property
    def algorithms(self) -> list[str]:
        """The algorithms a token may use (each has its key)."""
        return sorted(self._keys)

    def verify(self, token: str) -> Principal:
        """The caller named by ``token``; raises ``AuthError`` with a one-line reason (``token
        revoked`` when it is on the deny-list) and ``DependencyUnavailableError`` when the
        deny-list cannot be read (fail closed)."""
        try:
            if self.insecure:
                claims = jwt.decode(
                    token,
                    options={"verify_signature": False, "verify_exp": True, "require": _REQUIRED_CLAIMS},
                )
            else:
                algorithm = jwt.get_unverified_header(token).get("alg")
                if algorithm not in self._keys:
                    raise AuthError(f"token algorithm {algorithm!r} is not accepted")
                claims = jwt.decode(
                    token,
                    self._keys[algorithm],
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    options={"require": _REQUIRED_CLAIMS},
                )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.PyJWTError as error:
            raise AuthError(f"invalid token: {error}") from None
        _check_expiry(claims.get("exp"), self._max_lifetime_s)
        principal = _principal(claims)
        if self.denylist is not None and self.denylist.is_revoked(revocation_id(token)):
            raise AuthError("token revoked")
        return principal


def revocation_id(token: str | None = None, *, jti: str | None = None) -> str:
    """What the deny-list holds for ``token`` (or for every token whose ``jti`` claim is
    ``jti``): ``jti-<SHA-256 of the jti>`` when the token has a string ``jti``, else
    ``claims-<SHA-256 of its decoded header and payload>``. Both are parts of the signed
    content, never the signature or the token's text, so another encoding of the same token or
    another signature of the same claims (ECDSA signatures are random and malleable) is refused
    alike. The signature is not checked here. Raises ``AuthError`` when ``token`` is not a JWT
    (three base64url segments, a JSON object as payload) and ``ValueError`` given neither or
    both arguments."""
    if (token is None) == (jti is None):
        raise ValueError("give a token or a jti")
    if token is not None:
        header, payload = _signed_parts(token)
        claim = _claims(payload).get("jti")
        if not isinstance(claim, str) or not claim:
            return "claims-" + hashlib.sha256(header + b"." + payload).hexdigest()
        jti = claim
    assert jti is not None
    return "jti-" + hashlib.sha256(jti.encode()).hexdigest()


def revoke_token(denylist: TokenDenylist, token: str, *, max_lifetime_s: int) -> float:
    """Put ``token`` on ``denylist`` until its ``exp`` (at most ``max_lifetime_s`` seconds: a
    token further ahead is refused anyway); returns those seconds, 0 when the token has expired
    already (nothing stored). The signature is not checked: revoking a token that would not
    verify is harmless. Raises ``AuthError`` when ``token`` is not a JWT or its ``exp`` is not a
    number, ``DependencyUnavailableError`` when the deny-list cannot be written."""
    exp = _claims(_signed_parts(token)[1]).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise AuthError("invalid token: 'exp' must be a number (seconds since the epoch)")
    ttl_s = min(exp - time.time(), float(max_lifetime_s))
    if ttl_s <= 0:
        return 0.0
    denylist.revoke(revocation_id(token), ttl_s)
    return ttl_s


def _signed_parts(token: str) -> tuple[bytes, bytes]:
    """The decoded header and payload of ``token``; raises ``AuthError`` when it is not a JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise AuthError("invalid token: not a JWT (three dot-separated segments)")
    try:
        return base64url_decode(parts[0]), base64url_decode(parts[1])
    except (ValueError, TypeError):
        raise AuthError("invalid token: a segment is not base64url") from None


def _claims(payload: bytes) -> dict[str, Any]:
    """The JSON object of a token's payload; raises ``AuthError`` when it is not one."""
    try:
        claims = json.loads(payload)
    except ValueError:
        raise AuthError("invalid token: the payload is not JSON") from None
    if not isinstance(claims, dict):
        raise AuthError("invalid token: the payload is not a JSON object")
    return claims


def _check_expiry(exp: Any, max_lifetime_s: int) -> None:
    """Raise ``AuthError`` unless ``exp`` (already checked by PyJWT to be in the future) is a
    JSON number at most ``max_lifetime_s`` seconds ahead."""
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise AuthError("invalid token: 'exp' must be a number (seconds since the epoch)")
    if exp > time.time() + max_lifetime_s:  # a comparison: no float overflow for a huge int
        raise AuthError(
            f"invalid token: 'exp' is more than {max_lifetime_s} s ahead (SCENEDEX_API__MAX_TOKEN_LIFETIME_S)"
        )


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid token: 'sub' must be a non-empty string")
    try:
        owner_id = uuid.UUID(str(claims.get("owner_id")))
    except ValueError:
        raise AuthError("invalid token: 'owner_id' must be a UUID") from None
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthError("invalid token: 'roles' must be a list of strings")
    return Principal(subject, owner_id, frozenset(roles))


def _load_public_key(value: str) -> Any:
    """The public key in ``value``: PEM text, or the path of a PEM file. Raises
    ``ApiConfigError`` when it is neither."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        text = value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()
        return load_pem_public_key(text.encode())
    except (OSError, ValueError, TypeError) as error:
        raise ApiConfigError(
            f"SCENEDEX_API__JWT_PUBLIC_KEY is neither a PEM public key nor a readable PEM file: {error}"
        ) from None
