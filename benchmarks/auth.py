"""The bearer header a benchmark's client sends: a token minted with the stack's secret,
valid longer than the longest benchmark runs."""

from datetime import timedelta

from domain.actors import Role
from domain.tokens import mint
from settings import Settings

TOKEN_TTL = timedelta(hours=3)


def bearer(settings: Settings, role: Role, sub: str) -> dict[str, str]:
    token = mint(
        subject=sub,
        role=role,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=TOKEN_TTL,
    )
    return {"Authorization": f"Bearer {token}"}
