"""The Stripe sandbox through the real ``stripe`` SDK and ``integrations.stripe_client``."""

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from domain.errors import (
    CardDeclined,
    IdempotencyError,
    NotFound,
    ProviderError,
    ValidationError,
)
from integrations.stripe_client import map_error, ping, ping_sync, verify_webhook
from tests.fixtures.stripe_sandbox import StripeSandbox, run_stripe_sandbox


def key() -> str:
    return f"test-{uuid.uuid4()}"


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def pay(client: stripe.StripeClient, amount: int = 5000, **extra: Any) -> stripe.PaymentIntent:
    """A confirmed payment intent (visa card unless ``payment_method`` says otherwise)."""
    params: Any = {
        "amount": amount,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        **extra,
    }
    return client.v1.payment_intents.create(params)


@pytest.fixture
def faults(stripe_sandbox: StripeSandbox) -> Iterator[StripeSandbox]:
    """The sandbox, with its fault settings restored afterwards (it is shared)."""
    before = stripe_sandbox.set_faults()
    try:
        yield stripe_sandbox
    finally:
        stripe_sandbox.set_faults(
            rate=before["rate"], kinds=before["kinds"], timeout_seconds=before["timeout_seconds"]
        )
        stripe_sandbox.clear_faults()


def test_manual_capture_moves_money_at_capture(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient
) -> None:
    customer = stripe_client.v1.customers.create(
        params={"email": "rider@example.com", "metadata": {"ride": "r-1"}}
    )
    intent = pay(
        stripe_client,
        amount=2500,
        customer=customer.id,
        capture_method="manual",
        metadata={"ride": "r-1"},
        expand=["latest_charge"],
    )
    assert intent.status == "requires_capture"
    assert intent.amount_capturable == 2500 and intent.amount_received == 0
    charge = intent.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.captured is False and charge.balance_transaction is None
    assert stripe_sandbox.movements(object_id=charge.id) == []

    captured = stripe_client.v1.payment_intents.capture(intent.id)
    assert captured.status == "succeeded" and captured.amount_received == 2500
    assert captured.metadata["ride"] == "r-1"
    charge = stripe_client.v1.charges.retrieve(
        charge.id, params={"expand": ["balance_transaction"]}
    )
    assert charge.captured is True and charge.amount_captured == 2500
    txn = charge.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.type, txn.amount, txn.source) == ("charge", 2500, charge.id)
    assert txn.fee == 103 and txn.net == 2500 - 103  # 2.9% + 30
    listed = stripe_client.v1.balance_transactions.list(params={"source": charge.id})
    assert [t.id for t in listed.data] == [txn.id]
    [movement] = stripe_sandbox.movements(object_id=charge.id)
    assert movement["kind"] == "capture" and movement["amount"] == 2500
    assert movement["related"] == {"payment_intent": intent.id}

    with pytest.raises(stripe.InvalidRequestError) as twice:
        stripe_client.v1.payment_intents.capture(intent.id)
    assert twice.value.code == "payment_intent_unexpected_state"


def test_partial_capture_and_cancel(stripe_client: stripe.StripeClient) -> None:
    intent = pay(stripe_client, amount=3000, capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        stripe_client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 3001})
    assert too_much.value.code == "amount_too_large"
    captured = stripe_client.v1.payment_intents.capture(
        intent.id, params={"amount_to_capture": 1200}
    )
    assert captured.amount_received == 1200 and captured.amount_capturable == 0

    held = pay(stripe_client, amount=3000, capture_method="manual")
    canceled = stripe_client.v1.payment_intents.cancel(
        held.id, params={"cancellation_reason": "abandoned"}
    )
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"


def test_partial_then_full_refund_and_no_over_refund(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient
) -> None:
    intent = pay(stripe_client, amount=5000)
    assert intent.status == "succeeded"
    charge_id = intent.latest_charge
    assert isinstance(charge_id, str)

    partial = stripe_client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 2000, "reason": "requested_by_customer"}
    )
    assert (partial.status, partial.amount, partial.charge) == ("succeeded", 2000, charge_id)
    charge = stripe_client.v1.charges.retrieve(charge_id)
    assert charge.amount_refunded == 2000 and charge.refunded is False

    with pytest.raises(stripe.InvalidRequestError) as over:
        stripe_client.v1.refunds.create(params={"charge": charge_id, "amount": 3001})
    assert over.value.http_status == 400
    assert over.value.code == "amount_too_large" and over.value.param == "amount"
    assert isinstance(map_error(over.value), ValidationError)

    rest = stripe_client.v1.refunds.create(params={"payment_intent": intent.id})
    assert rest.amount == 3000
    charge = stripe_client.v1.charges.retrieve(charge_id)
    assert charge.amount_refunded == 5000 and charge.refunded is True
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1})
    assert again.value.code == "charge_already_refunded"

    refunds = stripe_client.v1.refunds.list(params={"payment_intent": intent.id})
    assert {r.id for r in refunds.data} == {partial.id, rest.id}
    txns = stripe_client.v1.balance_transactions.list(params={"type": "refund", "limit": 100})
    amounts = {t.source: t.amount for t in txns.data}
    assert amounts[partial.id] == -2000 and amounts[rest.id] == -3000
    moved = [
        m for m in stripe_sandbox.movements(kind="refund") if m["related"]["charge"] == charge_id
    ]
    assert sorted(m["amount"] for m in moved) == [2000, 3000]


def test_transfer_takes_from_the_available_balance(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient
) -> None:
    stripe_sandbox.fund(10_000)
    group = f"ride-{uuid.uuid4()}"
    transfer = stripe_client.v1.transfers.create(
        params={
            "amount": 7000,
            "currency": "usd",
            "destination": "acct_driver1",
            "transfer_group": group,
            "metadata": {"payout": "p-1"},
        },
        options={"idempotency_key": key()},
    )
    assert (transfer.amount, transfer.destination, transfer.reversed) == (
        7000,
        "acct_driver1",
        False,
    )
    listed = stripe_client.v1.transfers.list(params={"transfer_group": group})
    assert [t.id for t in listed.data] == [transfer.id]
    txn = stripe_client.v1.balance_transactions.retrieve(str(transfer.balance_transaction))
    assert (txn.type, txn.amount, txn.net) == ("transfer", -7000, -7000)
    [movement] = stripe_sandbox.movements(object_id=transfer.id)
    assert movement["kind"] == "transfer" and movement["related"]["transfer_group"] == group

    with pytest.raises(stripe.InvalidRequestError) as broke:
        stripe_client.v1.transfers.create(
            params={"amount": 100, "currency": "sek", "destination": "acct_driver1"}
        )
    assert broke.value.code == "balance_insufficient"
    with pytest.raises(stripe.InvalidRequestError) as nowhere:
        stripe_client.v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": "cus_nope"}
        )
    assert nowhere.value.param == "destination"


def test_deleted_transfer_vanishes_from_the_records(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient
) -> None:
    stripe_sandbox.fund(500)
    transfer = stripe_client.v1.transfers.create(
        params={"amount": 500, "currency": "usd", "destination": "acct_gone"}
    )
    result = stripe_sandbox.delete_object(transfer.id)
    assert result == {
        "deleted": transfer.id,
        "balance_transactions_deleted": 1,
        "movements_deleted": 1,
    }
    with pytest.raises(stripe.InvalidRequestError) as gone:
        stripe_client.v1.transfers.retrieve(transfer.id)
    assert gone.value.http_status == 404 and gone.value.code == "resource_missing"
    assert stripe_sandbox.movements(object_id=transfer.id) == []


def test_payout_is_paid_later_with_an_event(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient
) -> None:
    stripe_sandbox.fund(900, "eur")
    payout = stripe_client.v1.payouts.create(params={"amount": 900, "currency": "eur"})
    assert payout.status == "pending"
    assert stripe_sandbox.movements(object_id=payout.id)[0]["kind"] == "payout"
    wait_for(lambda: stripe_client.v1.payouts.retrieve(payout.id).status == "paid")
    events = stripe_client.v1.events.list(params={"type": "payout.paid", "limit": 100})
    assert payout.id in {e.data.object["id"] for e in events.data}


@pytest.mark.parametrize(
    ("card", "code", "decline_code"),
    [
        ({"token": "tok_chargeDeclined"}, "card_declined", "generic_decline"),
        ({"number": "4000000000009995"}, "card_declined", "insufficient_funds"),
        ({"number": "4000000000009987"}, "card_declined", "lost_card"),
        ({"number": "4000000000000069"}, "expired_card", "expired_card"),
        ({"number": "4000000000000127"}, "incorrect_cvc", "incorrect_cvc"),
        ({"number": "4100000000000019"}, "card_declined", "fraudulent"),
    ],
)
def test_declined_test_cards_raise_card_errors(
    stripe_sandbox: StripeSandbox,
    stripe_client: stripe.StripeClient,
    card: dict[str, str],
    code: str,
    decline_code: str,
) -> None:
    if "number" in card:
        card = {**card, "exp_month": "12", "exp_year": "2040", "cvc": "123"}
    params: Any = {"type": "card", "card": card}
    method = stripe_client.v1.payment_methods.create(params)
    with pytest.raises(stripe.CardError) as declined:
        pay(stripe_client, payment_method=method.id)
    error = declined.value
    assert error.http_status == 402 and error.code == code
    assert error.error is not None and error.error.decline_code == decline_code
    assert error.error.payment_intent is not None
    intent = stripe_client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.decline_code == decline_code
    charge = stripe_client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.status == "failed" and charge.failure_code == code
    assert stripe_sandbox.movements(object_id=charge.id) == []

    mapped = map_error(error)
    assert isinstance(mapped, CardDeclined)
    assert mapped.details["decline_code"] == decline_code
    assert mapped.details["payment_intent"] == intent.id


def test_magic_payment_method_declines_on_confirm(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as declined:
        pay(stripe_client, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    assert declined.value.error is not None
    assert declined.value.error.decline_code == "insufficient_funds"


def test_invalid_card_number_is_refused_at_creation(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as bad:
        stripe_client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": "4242424242424241", "exp_month": 1, "exp_year": 2040},
            }
        )
    assert bad.value.code == "incorrect_number"


def test_idempotency_key_replays_the_first_response(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient
) -> None:
    idem = key()
    params: Any = {
        "amount": 4200,
        "currency": "usd",
        "payment_method": "pm_card_mastercard",
        "confirm": True,
    }
    first = stripe_client.v1.payment_intents.create(params, {"idempotency_key": idem})
    second = stripe_client.v1.payment_intents.create(params, {"idempotency_key": idem})
    assert first.id == second.id and second.status == "succeeded"
    assert first.last_response is not None and second.last_response is not None
    assert second.last_response.body == first.last_response.body
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(stripe_sandbox.movements(idempotency_key=idem)) == 1

    other: Any = {**params, "amount": 4300}
    with pytest.raises(stripe.IdempotencyError) as reused:
        stripe_client.v1.payment_intents.create(other, {"idempotency_key": idem})
    assert reused.value.http_status == 400
    assert isinstance(map_error(reused.value), IdempotencyError)
    assert len(stripe_sandbox.movements(idempotency_key=idem)) == 1


def test_declines_are_replayed_too(stripe_client: stripe.StripeClient) -> None:
    idem = key()
    params: Any = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
    }
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as declined:
            stripe_client.v1.payment_intents.create(params, {"idempotency_key": idem})
        errors.append(declined.value)
    assert errors[0].http_body == errors[1].http_body
    assert errors[1].headers is not None
    assert errors[1].headers["Idempotent-Replayed"] == "true"


async def test_concurrent_request_with_a_running_key_is_a_409(
    stripe_sandbox: StripeSandbox,
) -> None:
    idem = key()
    params: Any = {
        "amount": 700,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    slow: Any = {"idempotency_key": idem, "headers": {"Sandbox-Delay": "0.6"}}
    first = asyncio.create_task(
        stripe_sandbox.client().v1.payment_intents.create_async(params, slow)
    )
    await asyncio.sleep(0.2)
    with pytest.raises(stripe.APIError) as locked:
        await stripe_sandbox.client().v1.payment_intents.create_async(
            params, {"idempotency_key": idem}
        )
    assert locked.value.http_status == 409
    assert locked.value.error is not None and locked.value.error.type == "idempotency_error"
    assert isinstance(map_error(locked.value), ProviderError)
    # The SDK retries 409s itself and then gets the first request's result.
    patient = stripe_sandbox.client(max_network_retries=2)
    retried = await patient.v1.payment_intents.create_async(params, {"idempotency_key": idem})
    intent = await first
    assert retried.id == intent.id
    assert len(stripe_sandbox.movements(idempotency_key=idem)) == 1


def test_timeout_then_retry_with_the_same_key_moves_money_once(faults: StripeSandbox) -> None:
    faults.set_faults(timeout_seconds=0.6)
    hasty = faults.client(timeout_seconds=0.3)
    idem = key()
    params: Any = {
        "amount": 1500,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    with pytest.raises(stripe.APIConnectionError) as timed_out:
        hasty.v1.payment_intents.create(
            params, {"idempotency_key": idem, "headers": {"Sandbox-Fault": "timeout"}}
        )
    assert isinstance(map_error(timed_out.value), ProviderError)
    # The money moved although the client never heard of it.
    [movement] = faults.movements(idempotency_key=idem)

    retried = hasty.v1.payment_intents.create(params, {"idempotency_key": idem})
    assert retried.status == "succeeded"
    assert retried.last_response is not None
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    assert retried.latest_charge == movement["object_id"]
    assert len(faults.movements(idempotency_key=idem)) == 1


def test_sdk_retries_through_a_timeout_with_its_own_key(faults: StripeSandbox) -> None:
    faults.set_faults(timeout_seconds=0.6, next=["timeout"])
    client = faults.client(timeout_seconds=0.3, max_network_retries=1)
    intent = pay(client, amount=1600)
    assert intent.last_response is not None
    assert intent.last_response.headers["Idempotent-Replayed"] == "true"
    key_used = intent.last_response.headers["Idempotency-Key"]
    [movement] = faults.movements(idempotency_key=key_used)
    assert movement["object_id"] == intent.latest_charge


@pytest.mark.parametrize(
    ("fault", "error_type", "status"),
    [("500", stripe.APIError, 500), ("429", stripe.RateLimitError, 429)],
)
def test_faults_surface_as_sdk_errors_without_retries(
    faults: StripeSandbox, fault: str, error_type: type[stripe.StripeError], status: int
) -> None:
    idem = key()
    with pytest.raises(error_type) as failed:
        faults.client().v1.payment_intents.create(
            {"amount": 900, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
            {"idempotency_key": idem, "headers": {"Sandbox-Fault": fault}},
        )
    assert failed.value.http_status == status
    mapped = map_error(failed.value)
    assert isinstance(mapped, ProviderError)
    assert faults.movements(idempotency_key=idem) == []
    if fault == "429":
        assert mapped.code == "provider_rate_limited"


def test_sdk_retries_recover_from_a_500_with_one_movement(faults: StripeSandbox) -> None:
    faults.set_faults(next=["500"])
    intent = pay(faults.client(max_network_retries=2), amount=1700)
    assert intent.status == "succeeded"
    assert faults.set_faults()["next"] == []  # the first attempt did meet the fault
    assert intent.last_response is not None
    key_used = intent.last_response.headers["Idempotency-Key"]
    assert len(faults.movements(idempotency_key=key_used)) == 1


def test_rate_limits_are_left_to_the_caller_to_retry(faults: StripeSandbox) -> None:
    # Stripe's SDKs do not retry a 429 rate limit (it would add to the contention); the
    # caller (a Temporal activity) retries with the same key.
    faults.set_faults(next=["429"])
    idem = key()
    params: Any = {
        "amount": 1800,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    client = faults.client(max_network_retries=2)
    with pytest.raises(stripe.RateLimitError):
        client.v1.payment_intents.create(params, {"idempotency_key": idem})
    intent = client.v1.payment_intents.create(params, {"idempotency_key": idem})
    assert intent.status == "succeeded"
    assert len(faults.movements(idempotency_key=idem)) == 1


def test_fault_rate_with_a_seed_and_the_none_override(faults: StripeSandbox) -> None:
    settings = faults.set_faults(rate=1.0, kinds=["500"], seed=7)
    assert settings["rate"] == 1.0 and settings["kinds"] == ["500"]
    client = faults.client()
    with pytest.raises(stripe.APIError):
        client.v1.balance.retrieve()
    balance = client.v1.balance.retrieve(options={"headers": {"Sandbox-Fault": "none"}})
    assert balance.object == "balance"
    # Control endpoints are never faulted.
    assert faults.movements(kind="no-such-kind") == []
    bad = httpx.post(f"{faults.url}/_sandbox/faults", json={"kinds": ["503"]})
    assert bad.status_code == 400


class Receiver:
    """A local webhook endpoint that answers ``fail_first`` 500s, then 200s."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[bytes, str]] = []
        self._failures_left = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((body, self.headers.get("Stripe-Signature", "")))
                failing = receiver._failures_left > 0
                receiver._failures_left -= 1
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(fail_first=1)
    try:
        yield receiver
    finally:
        receiver.close()


def test_webhooks_are_signed_delivered_and_retried(
    stripe_sandbox: StripeSandbox, stripe_client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = stripe_client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    assert endpoint.secret == stripe_sandbox.webhook_secret
    try:
        customer = stripe_client.v1.customers.create(params={"email": "hook@example.com"})
        stripe_client.v1.customers.update(customer.id, params={"name": "not delivered"})
        # The first attempt got a 500; the retry (0.5 s later) got a 200.
        wait_for(lambda: len(receiver.deliveries) >= 2)
    finally:
        stripe_client.v1.webhook_endpoints.delete(endpoint.id)
    first, second = receiver.deliveries[:2]
    events = []
    for payload, signature in (first, second):
        event = stripe.Webhook.construct_event(payload, signature, stripe_sandbox.webhook_secret)
        events.append(event)
        assert event.type == "customer.created"
        assert event.data.object["id"] == customer.id
        assert verify_webhook(payload, signature, stripe_sandbox.webhook_secret).id == event.id
    assert events[0].id == events[1].id
    time.sleep(0.1)
    assert all(json.loads(body)["type"] == "customer.created" for body, _ in receiver.deliveries)

    payload, signature = first
    tampered = payload.replace(customer.id.encode(), b"cus_someoneelse")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, signature, stripe_sandbox.webhook_secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, signature, "whsec_wrong")
    with pytest.raises(ValidationError):
        verify_webhook(tampered, signature, stripe_sandbox.webhook_secret)


def test_events_record_state_changes(stripe_client: stripe.StripeClient) -> None:
    intent = pay(stripe_client, amount=1900)
    stripe_client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    since = intent.created
    events = stripe_client.v1.events.list(
        params={
            "types": ["payment_intent.created", "payment_intent.succeeded", "charge.refunded"],
            "created": {"gte": since},
            "limit": 100,
        }
    )
    mine = [
        e.type
        for e in events.data
        if intent.id in (e.data.object["id"], e.data.object.to_dict().get("payment_intent"))
    ]
    # Newest first, as Stripe lists.
    assert mine == ["charge.refunded", "payment_intent.succeeded", "payment_intent.created"]
    event = stripe_client.v1.events.retrieve(events.data[0].id)
    assert event.request is not None and event.request.id is not None


def test_lists_paginate_newest_first(stripe_client: stripe.StripeClient) -> None:
    email = f"{uuid.uuid4()}@example.com"
    ids = [stripe_client.v1.customers.create(params={"email": email}).id for _ in range(3)]
    page = stripe_client.v1.customers.list(params={"email": email, "limit": 2})
    assert [c.id for c in page.data] == ids[:0:-1] and page.has_more is True
    assert page.url == "/v1/customers"
    rest = stripe_client.v1.customers.list(
        params={"email": email, "limit": 2, "starting_after": page.data[-1].id}
    )
    assert [c.id for c in rest.data] == [ids[0]] and rest.has_more is False
    assert [c.id for c in page.auto_paging_iter()] == ids[::-1]
    before = stripe_client.v1.customers.list(params={"email": email, "ending_before": ids[0]})
    assert [c.id for c in before.data] == ids[:0:-1]

    stripe_client.v1.customers.delete(ids[1])
    remaining = stripe_client.v1.customers.list(params={"email": email})
    assert [c.id for c in remaining.data] == [ids[2], ids[0]]
    assert stripe_client.v1.customers.retrieve(ids[1]).to_dict()["deleted"] is True


def test_payment_methods_attach_and_detach(stripe_client: stripe.StripeClient) -> None:
    customer = stripe_client.v1.customers.create()
    method = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", params={"customer": customer.id}
    )
    assert method.customer == customer.id and method.card is not None
    assert method.card.last4 == "4242" and method.card.brand == "visa"
    listed = stripe_client.v1.customers.payment_methods.list(customer.id)
    assert [m.id for m in listed.data] == [method.id]
    intent = pay(stripe_client, customer=customer.id, payment_method=method.id)
    assert intent.status == "succeeded"
    detached = stripe_client.v1.payment_methods.detach(method.id)
    assert detached.customer is None


def test_errors_for_keys_ids_and_parameters(stripe_sandbox: StripeSandbox) -> None:
    bad_key = stripe.StripeClient(
        "sk_live_nope", base_addresses={"api": stripe_sandbox.url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as unauthenticated:
        bad_key.v1.customers.list()
    assert unauthenticated.value.http_status == 401
    client = stripe_sandbox.client()
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_doesnotexist")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert isinstance(map_error(missing.value), NotFound)
    colour: Any = {"colour": "red"}
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.create(colour)
    assert unknown.value.code == "parameter_unknown" and unknown.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError) as small:
        pay(client, amount=10)
    assert small.value.code == "amount_too_small"


def test_legacy_global_configuration(stripe_sandbox: StripeSandbox) -> None:
    saved = stripe.api_key, stripe.api_base, stripe.max_network_retries
    stripe.api_key, stripe.api_base = stripe_sandbox.api_key, stripe_sandbox.url
    stripe.max_network_retries = 0
    try:
        customer = stripe.Customer.create(email="legacy@example.com")
        intent = stripe.PaymentIntent.create(
            amount=2000,
            currency="usd",
            customer=customer.id,
            payment_method="pm_card_visa",
            confirm=True,
            capture_method="manual",
        )
        captured = intent.capture(amount_to_capture=1500)
        assert captured.status == "succeeded" and captured.amount_received == 1500
        assert stripe.Customer.retrieve(customer.id).email == "legacy@example.com"
    finally:
        stripe.api_key, stripe.api_base, stripe.max_network_retries = saved


def test_state_and_keys_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "stripe-sandbox.sqlite3"
    idem = key()
    params: Any = {
        "amount": 2200,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    with run_stripe_sandbox(tmp_path, state_file=state) as first:
        intent = first.client().v1.payment_intents.create(params, {"idempotency_key": idem})
    with run_stripe_sandbox(tmp_path, state_file=state) as second:
        client = second.client()
        assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
        replayed = client.v1.payment_intents.create(params, {"idempotency_key": idem})
        assert replayed.id == intent.id
        assert len(second.movements(idempotency_key=idem)) == 1
        second.reset()
        assert second.movements() == []


async def test_ping(stripe_sandbox: StripeSandbox) -> None:
    summary = await ping(stripe_sandbox.api_key, stripe_sandbox.url)
    assert summary["livemode"] is False and "usd" in summary["available"]
    assert ping_sync(stripe_sandbox.api_key, stripe_sandbox.url)["livemode"] is False
    with pytest.raises(ProviderError):
        await ping(stripe_sandbox.api_key, "http://127.0.0.1:9", timeout_seconds=0.5)
