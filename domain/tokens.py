"""Bearer JWTs (HS256): minting for development and verification for the API."""

from datetime import UTC, datetime, timedelta

import jwt

from domain.actors import Actor, Role
from domain.errors import AuthenticationError, ValidationError

API_ROLES = frozenset(role for role in Role if role is not Role.SYSTEM)


def mint(
    *,
    subject: str,
    role: Role,
    secret: str,
    issuer: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> str:
    if role not in API_ROLES:
        raise ValidationError(f"Unknown role {role!r}", param="role")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role.value,
        "iss": issuer,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(token: str, *, secret: str, issuer: str) -> Actor:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            options={"require": ["sub", "role", "exp", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("Token has expired", code="token_expired") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError(f"Invalid token: {exc}", code="invalid_token") from exc
    role = claims.get("role")
    # A role that is not a string (a list, an object) is unknown too, not a TypeError.
    if not isinstance(role, str) or role not in {r.value for r in API_ROLES}:
        raise AuthenticationError(f"Token carries an unknown role {role!r}", code="invalid_token")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip():
        raise AuthenticationError("Token carries an empty subject", code="invalid_token")
    return Actor(subject, Role(role))
