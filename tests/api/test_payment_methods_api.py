"""Payment methods over HTTP, in process, with the real ``stripe`` SDK on the Stripe sandbox:
cards attached through Stripe, the default, removal, verification, who may see what, and a
card number that is refused without being stored, echoed or logged."""

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stripe
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.payments import PaymentMethod, StripeCustomer
from settings import Settings
from tests.api.conftest import error_code
from tests.conftest import TokenFactory, in_process_api
from tests.fixtures.stripe_sandbox import StripeSandbox

URL = "/api/v1/payment-methods"
CARD_NUMBER = "4242424242424242"


@pytest.fixture
async def api(settings: Settings, stripe_sandbox: StripeSandbox) -> AsyncIterator[AsyncClient]:
    """The API with its Stripe client on the sandbox."""
    on_sandbox = settings.model_copy(
        update={"stripe_api_base": stripe_sandbox.url, "stripe_api_key": stripe_sandbox.api_key}
    )
    async with in_process_api(on_sandbox) as client:
        yield client


@pytest.fixture
def customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def faults(stripe_sandbox: StripeSandbox) -> Iterator[StripeSandbox]:
    """The shared sandbox, its fault settings restored afterwards."""
    before = stripe_sandbox.set_faults()
    yield stripe_sandbox
    stripe_sandbox.set_faults(rate=before["rate"], kinds=before["kinds"])
    stripe_sandbox.clear_faults()


async def add(
    api: AsyncClient, auth: TokenFactory, customer: str, token: str = "pm_card_visa", **body: Any
) -> dict[str, Any]:
    response = await api.post(
        URL, json={"token": token, **body}, headers=auth("customer", sub=customer)
    )
    assert response.status_code == 201, response.text
    added: dict[str, Any] = response.json()
    return added


async def stored(db: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """How many payment methods and Stripe customers the database holds."""
    async with db() as session:
        methods = await session.scalar(select(func.count()).select_from(PaymentMethod))
        customers = await session.scalar(select(func.count()).select_from(StripeCustomer))
    return int(methods or 0), int(customers or 0)


async def test_a_customer_adds_a_card_attached_at_stripe(
    api: AsyncClient, auth: TokenFactory, customer: str, stripe_client: stripe.StripeClient
) -> None:
    added = await add(api, auth, customer)

    assert added["customer_id"] == customer and added["object"] == "payment_method"
    assert added["type"] == "card" and added["brand"] == "visa" and added["last4"] == "4242"
    assert added["status"] == "active" and added["verification_status"] == "unverified"
    assert added["is_default"] is True
    # Stripe made a PaymentMethod of its own from the magic id, attached to our customer.
    pm_id = added["stripe_payment_method_id"]
    assert pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    method = stripe_client.v1.payment_methods.retrieve(pm_id)
    assert method.customer is not None
    stripe_customer = stripe_client.v1.customers.retrieve(str(method.customer))
    assert stripe_customer.metadata is not None
    assert stripe_customer.metadata["tollgate_customer_id"] == customer
    assert CARD_NUMBER not in str(added)

    fetched = await api.get(f"{URL}/{added['id']}", headers=auth("customer", sub=customer))
    assert fetched.status_code == 200 and fetched.json() == added


async def test_a_tok_token_becomes_a_card_on_the_same_stripe_customer(
    api: AsyncClient, auth: TokenFactory, customer: str, stripe_client: stripe.StripeClient
) -> None:
    first = await add(api, auth, customer)
    second = await add(api, auth, customer, token="tok_mastercard")

    assert second["brand"] == "mastercard" and second["last4"] == "4444"
    assert second["is_default"] is False
    cards = [
        stripe_client.v1.payment_methods.retrieve(m["stripe_payment_method_id"])
        for m in (first, second)
    ]
    assert cards[0].customer is not None and cards[0].customer == cards[1].customer


async def test_an_admin_adds_for_a_named_customer(
    api: AsyncClient, auth: TokenFactory, customer: str
) -> None:
    response = await api.post(
        URL,
        json={"customer_id": customer, "token": "tok_visa"},
        headers=auth("billing_admin", sub="ops-1"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["customer_id"] == customer

    unnamed = await api.post(URL, json={"token": "tok_visa"}, headers=auth("platform_admin"))
    assert unnamed.status_code == 400 and unnamed.json()["error"]["param"] == "customer_id"


async def test_set_default_moves_it(api: AsyncClient, auth: TokenFactory, customer: str) -> None:
    headers = auth("customer", sub=customer)
    first = await add(api, auth, customer)
    second = await add(api, auth, customer, token="pm_card_amex")

    moved = await api.put(f"{URL}/{second['id']}/set-default", headers=headers)

    assert moved.status_code == 200 and moved.json()["is_default"] is True
    default = await api.get(f"{URL}/customer/{customer}/default", headers=headers)
    assert default.json()["id"] == second["id"]
    assert (await api.get(f"{URL}/{first['id']}", headers=headers)).json()["is_default"] is False

    third = await add(api, auth, customer, token="tok_discover", set_default=True)
    default = await api.get(f"{URL}/customer/{customer}/default", headers=headers)
    assert default.json()["id"] == third["id"]


async def test_remove_detaches_at_stripe_and_leaves_no_default(
    api: AsyncClient, auth: TokenFactory, customer: str, stripe_client: stripe.StripeClient
) -> None:
    headers = auth("customer", sub=customer)
    first = await add(api, auth, customer)
    second = await add(api, auth, customer, token="tok_mastercard")

    removed = await api.delete(f"{URL}/{first['id']}", headers=headers)

    assert removed.status_code == 200, removed.text
    assert removed.json()["status"] == "removed" and removed.json()["is_default"] is False
    assert removed.json()["removed_at"] is not None
    assert (
        stripe_client.v1.payment_methods.retrieve(first["stripe_payment_method_id"]).customer
        is None
    )
    missing = await api.get(f"{URL}/customer/{customer}/default", headers=headers)
    assert missing.status_code == 404 and error_code(missing) == "resource_missing"
    active = await api.get(f"{URL}/customer/{customer}/active", headers=headers)
    assert [m["id"] for m in active.json()["data"]] == [second["id"]]
    assert active.json()["data"][0]["is_default"] is False

    again = await api.delete(f"{URL}/{first['id']}", headers=headers)
    assert again.status_code == 200 and again.json() == removed.json()
    refused = await api.put(f"{URL}/{first['id']}/set-default", headers=headers)
    assert refused.status_code == 409 and error_code(refused) == "payment_method_removed"


async def test_a_stripe_outage_is_a_503_and_changes_nothing(
    api: AsyncClient,
    auth: TokenFactory,
    customer: str,
    faults: StripeSandbox,
    db: async_sessionmaker[AsyncSession],
) -> None:
    headers = auth("customer", sub=customer)
    kept = await add(api, auth, customer)
    before = await stored(db)
    faults.set_faults(rate=1.0, kinds=["500"])

    added = await api.post(URL, json={"token": "tok_visa"}, headers=headers)
    removed = await api.delete(f"{URL}/{kept['id']}", headers=headers)

    assert added.status_code == 503 and added.json()["error"]["type"] == "api_error"
    assert removed.status_code == 503
    faults.clear_faults()
    faults.set_faults(rate=0.0)
    assert await stored(db) == before
    still = await api.get(f"{URL}/{kept['id']}", headers=headers)
    assert still.json()["status"] == "active" and still.json()["is_default"] is True


async def test_an_unknown_token_is_a_400_and_nothing_is_stored(
    api: AsyncClient, auth: TokenFactory, customer: str, db: async_sessionmaker[AsyncSession]
) -> None:
    response = await api.post(
        URL, json={"token": "tok_nosuchcard"}, headers=auth("customer", sub=customer)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payment_token_invalid"
    assert response.json()["error"]["param"] == "token"
    assert (await stored(db))[0] == 0


async def test_verification_status_is_for_admins(
    api: AsyncClient, auth: TokenFactory, customer: str
) -> None:
    added = await add(api, auth, customer)
    url = f"{URL}/{added['id']}/verification-status"

    by_customer = await api.put(
        url, json={"status": "verified"}, headers=auth("customer", sub=customer)
    )
    by_admin = await api.put(url, json={"status": "verified"}, headers=auth("billing_admin"))
    unknown = await api.put(url, json={"status": "trusted"}, headers=auth("billing_admin"))

    assert by_customer.status_code == 403 and error_code(by_customer) == "forbidden"
    assert by_admin.status_code == 200 and by_admin.json()["verification_status"] == "verified"
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "status"
    fetched = await api.get(f"{URL}/{added['id']}", headers=auth("customer", sub=customer))
    assert fetched.json()["verification_status"] == "verified"


async def test_another_customers_methods_are_forbidden(
    api: AsyncClient, auth: TokenFactory, customer: str
) -> None:
    added = await add(api, auth, customer)
    other = auth("customer", sub="someone-else")
    method_url = f"{URL}/{added['id']}"

    refusals = [
        await api.get(method_url, headers=other),
        await api.put(f"{method_url}/set-default", headers=other),
        await api.delete(method_url, headers=other),
        await api.get(f"{URL}/customer/{customer}", headers=other),
        await api.get(f"{URL}/customer/{customer}/active", headers=other),
        await api.get(f"{URL}/customer/{customer}/default", headers=other),
        await api.get(f"{URL}/customer/{customer}/type/card", headers=other),
        await api.post(URL, json={"customer_id": customer, "token": "tok_visa"}, headers=other),
        await api.get(method_url, headers=auth("driver", sub=customer)),
    ]

    assert [r.status_code for r in refusals] == [403] * len(refusals)
    assert all(r.json()["error"]["type"] == "permission_error" for r in refusals)
    admin = await api.get(method_url, headers=auth("platform_admin"))
    assert admin.status_code == 200
    owner = await api.get(method_url, headers=auth("customer", sub=customer))
    assert owner.json()["status"] == "active" and owner.json()["is_default"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"token": CARD_NUMBER},
        {"token": "4242 4242 4242 4242"},
        {"token": "4242-4242-4242-4242"},
        {"token": int(CARD_NUMBER)},
        {"token": "tok_visa", "card_number": CARD_NUMBER},
        {"token": "tok_visa", "number": CARD_NUMBER, "cvc": "123"},
        {"token": "tok_visa", "card": {"number": CARD_NUMBER, "exp_month": 12}},
        {"card": {"number": CARD_NUMBER}},
    ],
)
async def test_a_card_number_is_refused_never_echoed_nor_logged(
    api: AsyncClient,
    auth: TokenFactory,
    customer: str,
    db: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    body: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG)
    with_key = {**auth("customer", sub=customer), "Idempotency-Key": str(uuid.uuid4())}

    response = await api.post(URL, json=body, headers=with_key)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "parameter_invalid"
    assert "4242" not in response.text
    assert "4242" not in caplog.text
    assert await stored(db) == (0, 0)


async def test_a_card_number_as_token_gets_a_clear_message(
    api: AsyncClient, auth: TokenFactory, customer: str
) -> None:
    response = await api.post(
        URL, json={"token": CARD_NUMBER}, headers=auth("customer", sub=customer)
    )
    error = response.json()["error"]
    assert error["param"] == "token"
    assert "card numbers are never accepted" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "token"),
        ({"token": "visa"}, "token"),
        ({"token": "pm_card visa"}, "token"),
        ({"token": "src_123"}, "token"),
        ({"token": "tok_visa", "set_default": "perhaps"}, "set_default"),
        ({"token": "tok_visa", "customer_id": ""}, "customer_id"),
    ],
)
async def test_invalid_bodies_are_400_envelopes_and_store_nothing(
    api: AsyncClient,
    auth: TokenFactory,
    customer: str,
    db: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    param: str,
) -> None:
    response = await api.post(URL, json=body, headers=auth("customer", sub=customer))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid"
    assert response.json()["error"]["param"] == param
    assert await stored(db) == (0, 0)


async def test_lists_filter_and_page(api: AsyncClient, auth: TokenFactory, customer: str) -> None:
    headers = auth("customer", sub=customer)
    made = [await add(api, auth, customer, token=t) for t in ("tok_visa", "tok_amex", "tok_jcb")]
    await add(api, auth, "another-customer")
    await api.delete(f"{URL}/{made[0]['id']}", headers=headers)

    first = (await api.get(f"{URL}/customer/{customer}?limit=2", headers=headers)).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    assert [m["id"] for m in first["data"]] == [made[2]["id"], made[1]["id"]]  # newest first
    rest = (
        await api.get(
            f"{URL}/customer/{customer}?limit=2&starting_after={first['next_cursor']}",
            headers=headers,
        )
    ).json()
    assert rest["has_more"] is False and rest["next_cursor"] is None
    assert [m["id"] for m in rest["data"]] == [made[0]["id"]]

    active = (await api.get(f"{URL}/customer/{customer}/active", headers=headers)).json()
    assert {m["id"] for m in active["data"]} == {made[1]["id"], made[2]["id"]}
    cards = (await api.get(f"{URL}/customer/{customer}/type/card", headers=headers)).json()
    assert len(cards["data"]) == 3
    admin = (await api.get(f"{URL}/customer/{customer}", headers=auth("billing_admin"))).json()
    assert len(admin["data"]) == 3

    bank = await api.get(f"{URL}/customer/{customer}/type/bank_account", headers=headers)
    assert bank.status_code == 400 and bank.json()["error"]["param"] == "method_type"
    bad_cursor = await api.get(
        f"{URL}/customer/{customer}?starting_after=not-an-id", headers=headers
    )
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"]["param"] == "starting_after"
    too_many = await api.get(f"{URL}/customer/{customer}?limit=101", headers=headers)
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"


async def test_a_customer_without_methods_has_an_empty_list_and_no_default(
    api: AsyncClient, auth: TokenFactory, customer: str
) -> None:
    headers = auth("customer", sub=customer)
    listed = await api.get(f"{URL}/customer/{customer}", headers=headers)
    assert listed.status_code == 200 and listed.json()["data"] == []
    default = await api.get(f"{URL}/customer/{customer}/default", headers=headers)
    assert default.status_code == 404
    missing = await api.get(f"{URL}/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404 and error_code(missing) == "resource_missing"
