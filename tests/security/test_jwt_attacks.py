"""Attacks on the bearer JWT (HS256 under ``TOLLGATE_JWT_SECRET``, issuer
``TOLLGATE_JWT_ISSUER``, no audience): every forged, confused, stale or malformed token is a
401 in the error envelope, whatever it claims, and a token anywhere but the Authorization
header is not looked at.

Tokens are built by hand (``craft``) where PyJWT would refuse to make them, as an attacker's
tool would."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from httpx import AsyncClient

from domain.actors import Role
from settings import Settings
from tests.security.conftest import bearer

ADMIN_ONLY = "/api/v1/ledger/accounts"
# An attacker's RSA key, and its public half as a server configured for RS256 would publish.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE_PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A compact JWS with any header and claims; HMAC-SHA256 under ``key``, or no
    signature at all."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def admin_claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "mallory",
        "role": "platform_admin",
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def hs256(settings: Settings, **changes: Any) -> str:
    """Signed with the server's own secret: only the claims are wrong."""
    header = {"alg": "HS256", "typ": "JWT"}
    return craft(header, admin_claims(settings, **changes), settings.jwt_secret.encode())


def tampered(settings: Settings) -> str:
    """A customer's genuine token whose payload was edited to say platform_admin."""
    genuine = bearer(settings, Role.CUSTOMER, "mallory")["Authorization"].removeprefix("Bearer ")
    header, _, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["role"] = "platform_admin"
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def resigned_stripped(settings: Settings) -> str:
    """A genuine admin token without its signature."""
    genuine = bearer(settings, Role.PLATFORM_ADMIN, "ops")["Authorization"].removeprefix("Bearer ")
    return genuine.rsplit(".", 1)[0] + "."


Attack = Callable[[Settings], str]

ATTACKS: dict[str, Attack] = {
    "alg none": lambda s: craft({"alg": "none", "typ": "JWT"}, admin_claims(s), None),
    "alg None": lambda s: craft({"alg": "None", "typ": "JWT"}, admin_claims(s), None),
    "alg NONE with a signature": lambda s: craft(
        {"alg": "NONE"}, admin_claims(s), s.jwt_secret.encode()
    ),
    "no alg": lambda s: craft({"typ": "JWT"}, admin_claims(s), s.jwt_secret.encode()),
    "signature stripped": resigned_stripped,
    "HS256 keyed with an RSA public key (HS/RS confusion)": lambda s: craft(
        {"alg": "HS256", "typ": "JWT"}, admin_claims(s), RSA_PUBLIC_PEM
    ),
    "RS256 where HS256 is expected": lambda s: jwt.encode(
        admin_claims(s), RSA_PRIVATE_PEM, algorithm="RS256"
    ),
    "RS256 with its key embedded (jwk header)": lambda s: jwt.encode(
        admin_claims(s),
        RSA_PRIVATE_PEM,
        algorithm="RS256",
        headers={"jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))},
    ),
    "HS512 under the right secret": lambda s: jwt.encode(
        admin_claims(s), s.jwt_secret, algorithm="HS512"
    ),
    "HS256 under another secret": lambda s: jwt.encode(
        admin_claims(s), "not-the-secret-0123456789-0123456789-0123456789", algorithm="HS256"
    ),
    "expired": lambda s: hs256(s, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "not yet valid (nbf)": lambda s: hs256(s, nbf=int(time.time()) + 3600),
    "issued in the future (iat)": lambda s: hs256(s, iat=int(time.time()) + 3600),
    "wrong issuer": lambda s: hs256(s, iss="someone-else"),
    "issuer as a list": lambda s: hs256(s, iss=[s.jwt_issuer]),
    "no issuer": lambda s: hs256(s, iss=None),
    "an audience (Tollgate tokens have none)": lambda s: hs256(s, aud="another-service"),
    "no expiry": lambda s: hs256(s, exp=None),
    "expiry not a number": lambda s: hs256(s, exp="never"),
    "no subject": lambda s: hs256(s, sub=None),
    "empty subject": lambda s: hs256(s, sub=""),
    "subject not a string": lambda s: hs256(s, sub=42),
    "no role": lambda s: hs256(s, role=None),
    "unknown role": lambda s: hs256(s, role="superuser"),
    "the system role": lambda s: hs256(s, role="system"),
    "role in capitals": lambda s: hs256(s, role="PLATFORM_ADMIN"),
    "role as a list": lambda s: hs256(s, role=["platform_admin"]),
    "role as an object": lambda s: hs256(s, role={"name": "platform_admin"}),
    "payload tampered after signing": tampered,
    "critical header the server does not know": lambda s: craft(
        {"alg": "HS256", "crit": ["exp"]}, admin_claims(s), s.jwt_secret.encode()
    ),
    "not a JWT": lambda s: "not.a.jwt",
    "header not an object": lambda s: f"{b64(b'[]')}.{b64(b'{}')}.",
    "non-ASCII garbage": lambda s: "é.ü.ß",
    "a very long token": lambda s: "a" * 20_000,
}


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # HS512 under a 48-byte secret
@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_attack_tokens_are_401_in_the_envelope(
    security_api: AsyncClient, api_settings: Settings, attack: str
) -> None:
    token = ATTACKS[attack](api_settings)
    for method, url in (("GET", ADMIN_ONLY), ("GET", "/api/v1/payments")):
        response = await security_api.request(
            method, url, headers={b"authorization": f"Bearer {token}".encode("latin-1")}
        )
        assert response.status_code == 401, (attack, url, response.text)
        error = response.json()["error"]
        assert error["type"] == "authentication_error", (attack, error)
        assert error["code"] in {"invalid_token", "token_expired"}, (attack, error)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_an_attack_token_with_an_idempotency_key_changes_nothing(
    security_api: AsyncClient, api_settings: Settings
) -> None:
    token = ATTACKS["HS256 keyed with an RSA public key (HS/RS confusion)"](api_settings)
    response = await security_api.post(
        "/api/v1/ledger/accounts",
        json={"code": "jwt-attack", "name": "x", "type": "asset"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "jwt-attack"},
    )
    assert response.status_code == 401
    listed = await security_api.get(ADMIN_ONLY, headers=bearer(api_settings, "platform_admin", "o"))
    assert "jwt-attack" not in listed.text


@pytest.mark.parametrize(
    "placement",
    ["query access_token", "query token", "query jwt", "cookie", "Basic scheme", "X-Api-Key"],
)
async def test_a_valid_token_anywhere_but_the_bearer_header_is_ignored(
    security_api: AsyncClient, api_settings: Settings, placement: str
) -> None:
    token = bearer(api_settings, Role.PLATFORM_ADMIN, "ops")["Authorization"].removeprefix(
        "Bearer "
    )
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    if placement.startswith("query "):
        params[placement.removeprefix("query ")] = token
    elif placement == "cookie":
        headers["Cookie"] = f"token={token}; session={token}; tollgate_session={token}"
    elif placement == "Basic scheme":
        headers["Authorization"] = f"Basic {token}"
    else:
        headers["X-Api-Key"] = token
    response = await security_api.get(ADMIN_ONLY, params=params, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "missing_token"


async def test_the_genuine_token_still_works(
    security_api: AsyncClient, api_settings: Settings
) -> None:
    """The control: the same request with a token `tollgate token` would mint is served."""
    response = await security_api.get(
        ADMIN_ONLY, headers=bearer(api_settings, "platform_admin", "o")
    )
    assert response.status_code == 200, response.text
