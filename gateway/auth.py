"""Bearer tokens: verify a request's JWT into a Caller, and issue development tokens.

HS256 with a shared secret serves development and the embedded default; RS256/ES256 against
an OpenID Connect issuer's JWKS serves production. Audience, issuer and expiry are checked.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from shared.caller import ORGANISATION_ROLES, Caller, Role

ROLE_CLAIM = "veta_role"
ORGANISATION_CLAIM = "veta_org"


class Unauthenticated(Exception):
    """The request's credentials are missing or not acceptable."""


@dataclass(frozen=True)
class TokenSettings:
    secret: str | None
    issuer: str = "veta"
    audience: str = "veta"
    jwks_url: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TokenSettings:
        jwt_config = config.get("JWT") or {}
        return cls(secret=jwt_config.get("secret"), issuer=jwt_config.get("issuer") or "veta",
                   audience=jwt_config.get("audience") or "veta",
                   jwks_url=jwt_config.get("jwks_url"))


class Authenticator:
    def __init__(self, settings: TokenSettings) -> None:
        if not settings.secret and not settings.jwks_url:
            raise RuntimeError("the gateway needs VETA_JWT_SECRET or VETA_JWT_JWKS_URL")
        self.settings = settings
        self.jwks = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None

    def caller(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated("send an Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        try:
            if self.jwks is not None:
                key: Any = self.jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256"]
            else:
                key, algorithms = self.settings.secret, ["HS256"]
            claims = jwt.decode(token, key, algorithms=algorithms,
                                audience=self.settings.audience, issuer=self.settings.issuer,
                                options={"require": ["exp", "sub", "aud", "iss"]})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token was refused: {exc}") from None
        return caller_from_claims(claims)


def caller_from_claims(claims: dict[str, Any]) -> Caller:
    try:
        role = Role(str(claims.get(ROLE_CLAIM)))
    except ValueError:
        raise Unauthenticated("the token names no Veta role") from None
    organisation = claims.get(ORGANISATION_CLAIM)
    if role in ORGANISATION_ROLES and not organisation:
        raise Unauthenticated(f"a {role} token must name its organisation")
    return Caller(subject=str(claims["sub"]), role=role, organisation=organisation)


def issue_token(settings: TokenSettings, role: Role, organisation: str | None = None,
                subject: str | None = None, ttl_seconds: int = 12 * 3600) -> str:
    """A signed HS256 token for development and scripts (production tokens come from the IdP)."""
    if not settings.secret:
        raise RuntimeError("issuing tokens needs the HS256 secret (VETA_JWT_SECRET)")
    if role in ORGANISATION_ROLES and not organisation:
        raise ValueError(f"a {role} token needs --org")
    now = int(time.time())
    claims = {"sub": subject or f"{role.lower()}-{uuid.uuid4().hex[:8]}", "iss": settings.issuer,
              "aud": settings.audience, "iat": now, "exp": now + ttl_seconds,
              ROLE_CLAIM: str(role)}
    if organisation:
        claims[ORGANISATION_CLAIM] = organisation
    return jwt.encode(claims, settings.secret, algorithm="HS256")
