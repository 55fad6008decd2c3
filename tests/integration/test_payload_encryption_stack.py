"""Private payloads on the embedded stack that `make run` starts: `tollgate dev` made a
development key, the API and the worker encrypt what they send to Temporal, the Temporal UI
is pointed at the API's codec server, and that server decodes for admins."""

import asyncio
import base64
import json
from typing import Any

import httpx
from google.protobuf import json_format
from httpx import AsyncClient
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import RawValue

from devstack.ephemeral import RunningStack
from integrations.payload_codec import ENCODING, KEY_ID_METADATA
from integrations.temporal import connect
from tests.conftest import TokenFactory
from tests.integration.conftest import Names
from tests.integration.test_tickets_http import issue

SECRET_REASON = "passenger ada.lovelace@example.com asked to cancel"


async def test_the_stack_encrypts_payloads_and_decodes_them_for_admins(
    n: Names,
    embedded: RunningStack,
    stack_api: AsyncClient,
    auth: TokenFactory,
    stack_temporal: Client,
) -> None:
    settings = embedded.settings
    keys = settings.payload_keyring()
    assert keys is not None and settings.payload_keys_path.exists()  # made by `tollgate dev`
    assert "Payloads      encrypted (key dev-1)" in embedded.output
    codec = f"http://127.0.0.1:{settings.api_port}/admin/codec"
    admin = {**auth("billing_admin", sub=n("ops")), "X-Namespace": settings.temporal_namespace}

    ticket = await issue(stack_api, auth, n)
    workflow_id = f"ticket-{ticket['id']}"
    keyless = await connect(settings.temporal_address, settings.temporal_namespace)
    async with httpx.AsyncClient(timeout=10) as http:
        # The Temporal UI is pointed at the API's codec server.
        ui_settings = (await http.get(f"{settings.temporal_ui_url}/api/v1/settings")).json()
        assert ui_settings["Codec"]["Endpoint"] == codec

        # An admin sends `cancel` from the UI: the UI has the input encoded by the codec
        # server, then sends it as is (a client without the key, like the UI).
        typed = Payload(
            metadata={"encoding": b"json/plain"},
            data=json.dumps({"reason": SECRET_REASON, "by": "ops@tollgate"}).encode(),
        )
        encoded = await http.post(
            f"{codec}/encode",
            json=json_format.MessageToDict(Payloads(payloads=[typed])),
            headers=admin,
        )
        assert encoded.status_code == 200, encoded.text
        (sealed,) = json_format.ParseDict(encoded.json(), Payloads()).payloads
        await keyless.get_workflow_handle(workflow_id).signal("cancel", RawValue(sealed))

        # The worker decodes it: the ticket is cancelled; a client with the key reads it.
        status: Any = None
        for _ in range(150):
            status = await stack_temporal.get_workflow_handle(workflow_id).query("status")
            if status["status"] == "CANCELLED":
                break
            await asyncio.sleep(0.2)
        assert status["status"] == "CANCELLED", status
        assert status["cancel_requested"] == SECRET_REASON

        # What Temporal stored, read without the key: ciphertext under the dev key.
        history = await keyless.get_workflow_handle(workflow_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        signalled = [
            payload
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            for payload in event.workflow_execution_signaled_event_attributes.input.payloads
        ]
        stored = [*started.input.payloads, *signalled]
        assert len(stored) >= 2
        for payload in stored:
            assert payload.metadata["encoding"] == ENCODING
            assert payload.metadata[KEY_ID_METADATA] == keys.current.encode()
            assert b"ada.lovelace" not in payload.data
            assert ticket["driver_id"].encode() not in payload.data

        # The codec server decodes them for an admin, and for nobody else.
        body = json_format.MessageToDict(Payloads(payloads=stored))
        decoded = await http.post(f"{codec}/decode", json=body, headers=admin)
        assert decoded.status_code == 200, decoded.text
        values = [json.loads(base64.b64decode(p["data"])) for p in decoded.json()["payloads"]]
        assert values[0]["driver_id"] == ticket["driver_id"]
        assert any(value.get("reason") == SECRET_REASON for value in values[1:])
        rider = await http.post(
            f"{codec}/decode", json=body, headers=auth("customer", sub=n("rider_a"))
        )
        assert rider.status_code == 403
