"""``/_sandbox/`` endpoints: what tests and operators use to steer and inspect the sandbox.

- ``GET /_sandbox/health``
- ``POST /_sandbox/reset``: forget everything (objects, keys, movements); faults back to start
- ``GET|POST /_sandbox/faults``: ``{"rate", "kinds", "timeout_seconds", "seed", "next"}``
- ``GET /_sandbox/movements?kind=&object_id=&idempotency_key=&currency=``
- ``DELETE /_sandbox/objects/{id}``: the object vanishes with its balance transactions and
  movements, as if Stripe had never done it (for reconciliation tests)
- ``POST /_sandbox/fund``: ``{"amount", "currency"}`` credits the available balance
- ``POST /_sandbox/payment_methods/{id}/declines``: ``{"count", "card"}``: the method's next
  ``count`` charges decline like the test ``card``
"""

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .cards import DECLINES, test_card_number
from .context import Context
from .sandbox import Sandbox


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    data = json.loads(body) if body else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "message": message}}, 400)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def reset(request: Request) -> JSONResponse:
    _sandbox(request).reset()
    return JSONResponse({"reset": True})


async def faults(request: Request) -> JSONResponse:
    injector = _sandbox(request).faults
    if request.method == "POST":
        try:
            data = await _json(request)
            unknown = set(data) - {"rate", "kinds", "timeout_seconds", "seed", "next"}
            if unknown:
                raise ValueError(f"unknown settings {sorted(unknown)}")
            injector.configure(
                rate=None if data.get("rate") is None else float(data["rate"]),
                kinds=data.get("kinds"),
                timeout_seconds=data.get("timeout_seconds"),
                seed=data.get("seed"),
                next_faults=data.get("next"),
            )
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
    return JSONResponse(injector.snapshot())


async def movements(request: Request) -> JSONResponse:
    store = _sandbox(request).store
    with store.lock:
        rows = store.movements(dict(request.query_params))
    return JSONResponse({"data": rows})


async def delete_object(request: Request) -> JSONResponse:
    object_id = request.path_params["object_id"]
    store = _sandbox(request).store
    with store.transaction():
        obj = store.get(object_id)
        if obj is None:
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "resource_missing",
                        "message": f"No such object: '{object_id}'",
                    }
                },
                404,
            )
        store.delete(object_id)
        transactions = store.find("balance_transaction", [("source", "=", object_id)])
        for transaction in transactions:
            store.delete(transaction["id"])
        removed = store.delete_movements(object_id)
    return JSONResponse(
        {
            "deleted": object_id,
            "balance_transactions_deleted": len(transactions),
            "movements_deleted": removed,
        }
    )


async def fund(request: Request) -> JSONResponse:
    try:
        data = await _json(request)
        amount = data["amount"]
        currency = str(data.get("currency", "usd")).lower()
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError("amount must be a positive integer of minor units")
    except (ValueError, KeyError) as exc:
        return _bad(f"bad funding request: {exc}")
    created: list[str] = []

    def credit(ctx: Context) -> None:
        created.append(ctx.balance_transaction("adjustment", amount, currency, None))

    _sandbox(request).run_job(credit)
    return JSONResponse({"balance_transaction": created[0]})


async def script_declines(request: Request) -> JSONResponse:
    """The next ``count`` charges of a stored payment method decline like the test ``card``
    (a number or a magic id), then it charges normally again: a card that fails twice and
    then succeeds, which no fixed test card can show."""
    method_id = request.path_params["method_id"]
    try:
        data = await _json(request)
        count = data["count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError("count must be a non-negative integer")
        card = str(data.get("card", "4000000000000002"))
        number = test_card_number(card) or card
        if number not in DECLINES:
            raise ValueError(f"{card} is not a declining test card")
    except (ValueError, KeyError) as exc:
        return _bad(f"bad declines request: {exc}")
    store = _sandbox(request).store
    with store.transaction():
        method = store.get(method_id)
        if method is None or method.get("object") != "payment_method":
            return _bad(f"no payment method {method_id}")
        method["_declines_left"] = count
        method["_declines_as"] = number
        store.update(method)
    return JSONResponse({"payment_method": method_id, "declines_left": count})


def control_routes() -> list[Route]:
    return [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST"]),
        Route("/_sandbox/movements", movements, methods=["GET"]),
        Route("/_sandbox/objects/{object_id}", delete_object, methods=["DELETE"]),
        Route("/_sandbox/fund", fund, methods=["POST"]),
        Route("/_sandbox/payment_methods/{method_id}/declines", script_declines, methods=["POST"]),
    ]
