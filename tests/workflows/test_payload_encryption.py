"""Private payloads on a real Temporal server (the time-skipping test server): a workflow
whose input carries a card holder's name and email runs through clients and workers with
the payload codec; what Temporal stores in its history cannot be read without the key.

The shared ``time_skipping_env`` client has no codec; these tests build their own clients
on the same server, one with the key and one without."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from google.protobuf.message import Message
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from integrations.payload_codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadKeys,
    generate_key,
)
from integrations.temporal import data_converter
from tests.replay.test_replay import HISTORIES
from worker import WORKFLOW_RUNNER, WORKFLOWS


class CardHolder(BaseModel):
    name: str
    email: str
    card_last4: str


class Receipt(BaseModel):
    message: str


HOLDER = CardHolder(name="Ada Lovelace", email="ada.lovelace@example.com", card_last4="4242")
PERSONAL = (b"Ada Lovelace", b"ada.lovelace@example.com")


@activity.defn(name="send_card_holder_receipt")
async def send_receipt(holder: CardHolder) -> Receipt:
    return Receipt(message=f"receipt sent to {holder.name} <{holder.email}>")


@workflow.defn(name="CardHolderReceipt")
class CardHolderReceiptWorkflow:
    @workflow.run
    async def run(self, holder: CardHolder) -> Receipt:
        return await workflow.execute_activity(
            send_receipt, holder, start_to_close_timeout=timedelta(seconds=30)
        )


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every ``Payload`` anywhere inside a protobuf message (an event of the history)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = value.values()
        elif field.is_repeated:
            items = value
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


def client_on(env: WorkflowEnvironment, codec: EncryptionCodec | None) -> Client:
    return Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=data_converter(codec),
    )


async def run_receipt(client: Client) -> tuple[str, Receipt]:
    queue = f"payload-encryption-{uuid.uuid4()}"
    workflow_id = f"card-holder-receipt-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[CardHolderReceiptWorkflow],
        activities=[send_receipt],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        receipt = await client.execute_workflow(
            CardHolderReceiptWorkflow.run, HOLDER, id=workflow_id, task_queue=queue
        )
    return workflow_id, receipt


async def test_history_is_unreadable_without_the_key(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    codec = EncryptionCodec(PayloadKeys.parse({"k1": generate_key()}))
    keyed = client_on(time_skipping_env, codec)
    workflow_id, receipt = await run_receipt(keyed)
    assert receipt.message == "receipt sent to Ada Lovelace <ada.lovelace@example.com>"

    # Read back by a client without the key: the raw history, as Temporal stores it.
    keyless = client_on(time_skipping_env, None)
    history = await keyless.get_workflow_handle(workflow_id).fetch_history()
    for event in history.events:
        raw = event.SerializeToString()
        assert not any(secret in raw for secret in PERSONAL), event
    stored = [payload for event in history.events for payload in payloads_in(event)]
    # The workflow's input and result, the activity's input and result.
    assert len(stored) >= 4
    for payload in stored:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"k1"
    with pytest.raises(Exception, match="binary/encrypted"):
        await keyless.get_workflow_handle(workflow_id).result()

    # With the key it all decodes, and the workflow replays from its encrypted history.
    started = history.events[0].workflow_execution_started_event_attributes
    assert await keyed.data_converter.decode(started.input.payloads, [CardHolder]) == [HOLDER]
    assert (await keyed.get_workflow_handle(workflow_id, result_type=Receipt).result()) == receipt
    replayed = await Replayer(
        workflows=[CardHolderReceiptWorkflow],
        data_converter=keyed.data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_a_rotated_key_still_reads_older_runs(time_skipping_env: WorkflowEnvironment) -> None:
    old, new = generate_key(), generate_key()
    before = EncryptionCodec(PayloadKeys.parse({"k1": old}))
    workflow_id, receipt = await run_receipt(client_on(time_skipping_env, before))
    after = client_on(
        time_skipping_env, EncryptionCodec(PayloadKeys.parse({"k2": new, "k1": old}, "k2"))
    )
    assert (await after.get_workflow_handle(workflow_id, result_type=Receipt).result()) == receipt
    _, fresh = await run_receipt(after)  # new runs under k2
    assert fresh == receipt


async def test_recorded_histories_replay_with_encryption_on() -> None:
    """Histories written in clear (before encryption was turned on) pass through the codec:
    turning it on does not break running workflows."""
    codec = EncryptionCodec(PayloadKeys.parse({"k1": generate_key()}))
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter(codec),
        workflow_runner=WORKFLOW_RUNNER,
    )
    assert HISTORIES

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in HISTORIES:
            yield WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))

    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    assert not results.replay_failures, results.replay_failures


def test_the_default_converter_is_unchanged_without_keys() -> None:
    assert data_converter(None) is pydantic_data_converter
