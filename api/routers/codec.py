"""The codec server: the Temporal Web UI (and ``temporal workflow show --codec-endpoint``)
send encrypted payloads here to show them decoded, to admins only.

Temporal's codec server protocol: ``POST /admin/codec/decode`` and ``POST
/admin/codec/encode`` take and return ``{"payloads": [{"metadata": {"encoding": "<base64>"},
"data": "<base64>"}]}`` (the protobuf JSON of ``Payloads``), with the namespace in
``X-Namespace``. The caller is an admin (``platform_admin`` or ``billing_admin``): by bearer
token (the CLI's ``--codec-auth``), or by the admin console's session cookie, which a browser
sends from the Temporal UI when its codec setting "Include cross-origin credentials" is on.
That cookie is scoped to ``/admin`` (and SameSite=Strict: the UI and the API must be on the
same site), hence the routes' place under ``/admin``. Browsers call them from the Temporal
UI's origin (``TOLLGATE_CODEC_CORS_ORIGINS``), so CORS is allowed there, on these routes only.
Errors are the API's JSON envelope.
"""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from api.actions import ADMIN_ROLES, allow
from api.console.web import SESSION_COOKIE
from api.deps import current_actor, get_settings
from domain.actors import Actor
from domain.errors import Conflict, ValidationError
from domain.tokens import verify
from integrations.payload_codec import EncryptionCodec, PayloadDecryptionError, PayloadKeyError

log = logging.getLogger("tollgate.codec")

PREFIX = "/admin/codec"
MAX_BODY_BYTES = 4 * 1024 * 1024  # Temporal's default blob size limit is 2 MiB per payload

router = APIRouter(prefix=PREFIX, tags=["operations"])


def codec_admin(request: Request) -> Actor:
    """An admin, by bearer token or else by the admin console's session cookie."""
    if request.headers.get("authorization") or SESSION_COOKIE not in request.cookies:
        actor = current_actor(request, get_settings(request))  # 401 if missing or bad
    else:
        settings = get_settings(request)
        actor = verify(
            request.cookies[SESSION_COOKIE],
            secret=settings.jwt_secret,
            issuer=settings.jwt_issuer,
        )
    allow(actor, ADMIN_ROLES)
    return actor


CodecAdmin = Annotated[Actor, Depends(codec_admin)]


def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec | None = request.app.state.payload_codec
    if codec is None:
        raise Conflict(
            "payload encryption is off on this deployment: there is nothing to decode",
            code="payload_encryption_off",
        )
    return codec


async def _payloads(request: Request) -> Payloads:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ValidationError(
            f"the request is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB",
            code="codec_request_invalid",
        )
    try:
        # Fields of newer Temporal versions are ignored rather than refused.
        return json_format.Parse(body or b"{}", Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise ValidationError(
            'expected {"payloads": [{"metadata": {...}, "data": "<base64>"}]}: '
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            code="codec_request_invalid",
            param="payloads",
        ) from None


def _answer(payloads: Payloads) -> JSONResponse:
    body = json_format.MessageToDict(payloads)
    body.setdefault("payloads", [])
    return JSONResponse(body)


@router.post("/decode")
async def decode(request: Request, actor: CodecAdmin) -> JSONResponse:
    """Decrypt payloads for display (payloads that are not encrypted come back unchanged);
    400 ``payload_key_unknown`` if one was encrypted under a key not configured here."""
    codec = _codec(request)
    payloads = await _payloads(request)
    try:
        decoded = await codec.decode(payloads.payloads)
    except PayloadKeyError as exc:
        raise ValidationError(str(exc), code="payload_key_unknown", param="payloads") from None
    except PayloadDecryptionError as exc:
        raise ValidationError(str(exc), code="payload_undecryptable", param="payloads") from None
    log.info(
        "codec decode: %d payload(s) for %s (%s), namespace %s",
        len(decoded),
        actor.id,
        actor.role.value,
        request.headers.get("x-namespace", "-"),
    )
    return _answer(Payloads(payloads=decoded))


@router.post("/encode")
async def encode(request: Request, _: CodecAdmin) -> JSONResponse:
    """Encrypt payloads with the current key (the UI's signal and start inputs)."""
    codec = _codec(request)
    payloads = await _payloads(request)
    return _answer(Payloads(payloads=await codec.encode(payloads.payloads)))


class CodecCORS:
    """CORS for the codec routes alone: the Temporal UI's origins may call them, with
    credentials; the rest of the API stays same-origin for browsers."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
