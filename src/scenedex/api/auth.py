"""Bearer JWT authentication: who is calling, for which owner, with which roles.

Tokens are verified with PyJWT against the keys in ``ApiSettings``: HS256 (and HS384/HS512)
with ``jwt_secret``, RS256 (and the other asymmetric algorithms) with ``jwt_public_key``. The
key is chosen by the token's algorithm family and only configured algorithms are accepted, so an
HS token is never checked against the public key (RFC 8725 section 2.1). Claims: ``sub``
(user id), ``owner_id`` (tenant UUID), ``roles`` (list of strings; ``"admin"`` opens the admin
endpoints) and ``exp``, all required except ``roles`` (default: none). ``exp`` must be a JSON
number (PyJWT alone accepts a numeric string) no further ahead than
``ApiSettings.max_token_lifetime_s``, so a token minted to never expire is refused.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from scenedex.settings import ApiSettings

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
    """

    def __init__(self, settings: ApiSettings) -> None:
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
        """The caller named by ``token``; raises ``AuthError`` with a one-line reason."""
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
        return _principal(claims)


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
