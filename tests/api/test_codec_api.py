"""The codec server (``/admin/codec/encode``, ``/admin/codec/decode``) the Temporal Web UI
calls to show encrypted payloads decoded: admins only (bearer token, or the admin console's
session cookie the browser sends), Temporal's JSON protocol, CORS for the UI alone."""

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from httpx import AsyncClient
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from api.console.web import SESSION_COOKIE
from domain.actors import Role
from domain.tokens import mint
from integrations.payload_codec import EncryptionCodec, PayloadKeys, generate_key
from settings import Settings
from tests.conftest import in_process_api, token_headers

K1, K2 = generate_key(), generate_key()
UI = "http://127.0.0.1:8233"


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    """The API without a database or Temporal: the codec routes need neither."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none",
        temporal_address="127.0.0.1:9",
        jwt_secret="codec-test-secret-0123456789-0123456789",
        **values,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path, payload_keys={"k2": SecretStr(K2), "k1": SecretStr(K1)}, payload_key_id="k2"
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with in_process_api(settings) as client:
        yield client


def headers(settings: Settings, role: Role) -> dict[str, str]:
    return {**token_headers(settings, role, sub="ops_1"), "X-Namespace": "default"}


def wire(*payloads: Payload) -> dict[str, Any]:
    """Payloads as the UI sends them (protobuf JSON: base64 bytes)."""
    return json_format.MessageToDict(Payloads(payloads=payloads))


def parsed(body: dict[str, Any]) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


CARD_HOLDER = Payload(
    metadata={"encoding": b"json/plain"},
    data=json.dumps({"name": "Ada Lovelace", "email": "ada@example.com"}).encode(),
)


async def test_an_admin_decodes_payloads_of_any_configured_key(
    api: AsyncClient, settings: Settings
) -> None:
    older = EncryptionCodec(PayloadKeys.parse({"k1": K1}))  # before the rotation to k2
    current = EncryptionCodec(PayloadKeys.parse({"k2": K2}))
    body = wire(
        older.encrypt(CARD_HOLDER),
        current.encrypt(CARD_HOLDER),
        CARD_HOLDER,  # last: in clear
    )
    for role in (Role.PLATFORM_ADMIN, Role.BILLING_ADMIN):
        response = await api.post("/admin/codec/decode", json=body, headers=headers(settings, role))
        assert response.status_code == 200, response.text
        assert parsed(response.json()) == [CARD_HOLDER, CARD_HOLDER, CARD_HOLDER]
        raw = response.json()["payloads"][0]
        assert base64.b64decode(raw["metadata"]["encoding"]) == b"json/plain"


async def test_encode_uses_the_current_key(api: AsyncClient, settings: Settings) -> None:
    response = await api.post(
        "/admin/codec/encode",
        json=wire(CARD_HOLDER),
        headers=headers(settings, Role.PLATFORM_ADMIN),
    )
    assert response.status_code == 200, response.text
    (sealed,) = parsed(response.json())
    assert sealed.metadata["encryption-key-id"] == b"k2"
    assert b"Ada" not in sealed.data
    codec = EncryptionCodec(PayloadKeys.parse({"k2": K2}))
    assert codec.decrypt(sealed) == CARD_HOLDER


async def test_empty_payloads(api: AsyncClient, settings: Settings) -> None:
    response = await api.post(
        "/admin/codec/decode", json={"payloads": []}, headers=headers(settings, Role.PLATFORM_ADMIN)
    )
    assert response.status_code == 200 and response.json() == {"payloads": []}


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.DRIVER, Role.VENDOR])
async def test_non_admins_are_refused(api: AsyncClient, settings: Settings, role: Role) -> None:
    for route in ("/admin/codec/decode", "/admin/codec/encode"):
        response = await api.post(route, json=wire(CARD_HOLDER), headers=headers(settings, role))
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"


def session_cookie(settings: Settings, role: Role, ttl: float = 600) -> dict[str, str]:
    """What the browser sends from the Temporal UI once an admin signed in to the console
    (with the UI's codec setting "Include cross-origin credentials")."""
    token = mint(
        subject="ops_1",
        role=role,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=timedelta(seconds=ttl),
    )
    return {"Cookie": f"{SESSION_COOKIE}={token}", "X-Namespace": "default", "Origin": UI}


async def test_the_console_session_cookie_lets_an_admin_decode(
    api: AsyncClient, settings: Settings
) -> None:
    sealed = EncryptionCodec(PayloadKeys.parse({"k2": K2})).encrypt(CARD_HOLDER)
    admin = await api.post(
        "/admin/codec/decode",
        json=wire(sealed),
        headers=session_cookie(settings, Role.BILLING_ADMIN),
    )
    assert admin.status_code == 200, admin.text
    assert parsed(admin.json()) == [CARD_HOLDER]
    assert admin.headers["access-control-allow-credentials"] == "true"

    customer = await api.post(
        "/admin/codec/decode", json=wire(sealed), headers=session_cookie(settings, Role.CUSTOMER)
    )
    assert customer.status_code == 403
    assert customer.json()["error"]["code"] == "forbidden"
    expired = await api.post(
        "/admin/codec/decode",
        json=wire(sealed),
        headers=session_cookie(settings, Role.PLATFORM_ADMIN, ttl=-60),
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["type"] == "authentication_error"


async def test_unauthenticated_is_401(api: AsyncClient, settings: Settings) -> None:
    sealed = EncryptionCodec(PayloadKeys.parse({"k2": K2})).encrypt(CARD_HOLDER)
    response = await api.post("/admin/codec/decode", json=wire(sealed))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert "Ada" not in response.text
    bad = await api.post(
        "/admin/codec/decode", json=wire(sealed), headers={"Authorization": "Bearer not-a-token"}
    )
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"payloads": "nope"}',
        b'{"payloads": [{"data": "%%% not base64"}]}',
        b'[{"payloads": []}]',
    ],
)
async def test_a_bad_body_is_400(api: AsyncClient, settings: Settings, body: bytes) -> None:
    response = await api.post(
        "/admin/codec/decode",
        content=body,
        headers={**headers(settings, Role.PLATFORM_ADMIN), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "codec_request_invalid"


async def test_an_unknown_key_is_400_not_500(api: AsyncClient, settings: Settings) -> None:
    stranger = EncryptionCodec(PayloadKeys.parse({"k9": generate_key()})).encrypt(CARD_HOLDER)
    response = await api.post(
        "/admin/codec/decode", json=wire(stranger), headers=headers(settings, Role.PLATFORM_ADMIN)
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "payload_key_unknown" and "'k9'" in error["message"]
    forged = EncryptionCodec(PayloadKeys.parse({"k1": generate_key()})).encrypt(CARD_HOLDER)
    response = await api.post(
        "/admin/codec/decode", json=wire(forged), headers=headers(settings, Role.PLATFORM_ADMIN)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payload_undecryptable"


async def test_without_keys_the_codec_says_encryption_is_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with in_process_api(settings) as api:
        response = await api.post(
            "/admin/codec/decode",
            json=wire(CARD_HOLDER),
            headers=headers(settings, Role.PLATFORM_ADMIN),
        )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payload_encryption_off"


async def test_cors_lets_the_temporal_ui_call_the_codec_and_nothing_else(
    api: AsyncClient, settings: Settings
) -> None:
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    allowed = await api.options("/admin/codec/decode", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()

    answer = await api.post(
        "/admin/codec/decode",
        json=wire(CARD_HOLDER),
        headers={**headers(settings, Role.PLATFORM_ADMIN), "Origin": UI},
    )
    assert answer.headers["access-control-allow-origin"] == UI

    elsewhere = await api.options(
        "/admin/codec/decode", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in elsewhere.headers
    for other_route in ("/api/v1/ledger/accounts", "/admin/login", "/admin/codecs"):
        refused = await api.options(other_route, headers=preflight)
        assert "access-control-allow-origin" not in refused.headers
