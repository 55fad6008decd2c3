"""What a resource handler works with: the store, the clock, the request, and the helpers
that keep Stripe's bookkeeping consistent (events, balance transactions, money movements)."""

import time
from dataclasses import dataclass, field
from typing import Any

from .config import SandboxConfig
from .errors import invalid, missing
from .params import Params
from .store import Filter, Store, new_id
from .webhooks import Target

API_VERSION = "2026-10-28.endive"

# Id prefixes of the objects the sandbox stores: a field holding such an id can be expanded.
EXPANDABLE_PREFIXES = ("cus_", "pm_", "pi_", "ch_", "re_", "tr_", "po_", "txn_", "evt_", "we_")

MAX_EXPAND_DEPTH = 4


@dataclass
class Context:
    store: Store
    config: SandboxConfig
    request_id: str | None = None
    idempotency_key: str | None = None
    now: int = field(default_factory=lambda: int(time.time()))
    # Events created by this request, delivered once its transaction has committed.
    deliveries: list[tuple[dict[str, Any], list[Target]]] = field(default_factory=list)

    def new_object(self, prefix: str, type_: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": new_id(prefix),
            "object": type_,
            "created": self.now,
            "livemode": False,
            **fields,
        }

    def load(self, type_: str, object_id: str, param: str = "id") -> dict[str, Any]:
        obj = self.store.get(object_id)
        if obj is None or obj["object"] != type_ or obj.get("deleted"):
            raise missing(type_, object_id, param)
        return obj

    def emit(self, type_: str, obj: dict[str, Any]) -> None:
        targets = [
            Target(endpoint["url"], self.config.webhook_secret or endpoint["_secret"])
            for endpoint in self.store.find("webhook_endpoint", [("status", "=", "enabled")])
            if "*" in endpoint["enabled_events"] or type_ in endpoint["enabled_events"]
        ]
        event = self.new_object(
            "evt_",
            "event",
            api_version=API_VERSION,
            data={"object": public(obj)},
            pending_webhooks=len(targets),
            request={"id": self.request_id, "idempotency_key": self.idempotency_key},
            type=type_,
        )
        self.store.insert(event)
        if targets:
            self.deliveries.append((event, targets))

    def balance_transaction(
        self, type_: str, amount: int, currency: str, source: str | None, fee: int = 0
    ) -> str:
        """Records a change of the account balance; funds are available at once (on Stripe,
        card funds are pending for days, which would make transfers in tests impossible)."""
        txn = self.new_object(
            "txn_",
            "balance_transaction",
            amount=amount,
            available_on=self.now,
            currency=currency,
            description=None,
            exchange_rate=None,
            fee=fee,
            fee_details=[
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else [],
            net=amount - fee,
            reporting_category=type_,
            source=source,
            status="available",
            type=type_,
        )
        self.store.insert(txn)
        return str(txn["id"])

    def record_movement(
        self, kind: str, obj: dict[str, Any], amount: int, related: dict[str, Any]
    ) -> None:
        self.store.add_movement(
            {
                "id": new_id("mv_"),
                "kind": kind,
                "object_id": obj["id"],
                "amount": amount,
                "currency": obj["currency"],
                "idempotency_key": self.idempotency_key,
                "request_id": self.request_id,
                "related": related,
                "created": self.now,
            }
        )

    def available(self, currency: str) -> int:
        return self.store.balance_totals().get((currency, "available"), 0)

    def update_metadata(self, type_: str, object_id: str, params: Params) -> dict[str, Any]:
        """``POST /v1/<objects>/<id>`` for objects whose only updatable field is metadata."""
        params.only("metadata")
        obj = self.load(type_, object_id)
        obj["metadata"] = params.metadata(obj["metadata"])
        self.store.update(obj)
        self.emit(f"{type_}.updated", obj)
        return self.render(obj, params.expand())

    def render(self, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        result = public(obj)
        for path in expand:
            parts = path.split(".")
            if len(parts) > MAX_EXPAND_DEPTH:
                raise invalid(
                    f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property.",
                    param="expand",
                )
            self._expand(result, parts, path)
        return result

    def _expand(self, node: dict[str, Any], parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        value = node.get(head)
        if isinstance(value, list) and rest:
            for item in value:
                if isinstance(item, dict):
                    self._expand(item, rest, path)
            return
        if isinstance(value, str) and value.startswith(EXPANDABLE_PREFIXES):
            target = self.store.get(value)
            if target is not None:
                value = node[head] = public(target)
        elif value is not None and not isinstance(value, dict):
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        if rest and isinstance(value, dict):
            self._expand(value, rest, path)

    def list_page(
        self, type_: str, url: str, params: Params, filters: list[Filter]
    ) -> dict[str, Any]:
        limit = params.integer("limit", minimum=1) or 10
        if limit > 100:
            raise invalid("Invalid limit: must be at most 100", param="limit")
        starting_after = params.string("starting_after")
        ending_before = params.string("ending_before")
        try:
            items, has_more = self.store.page(type_, filters, limit, starting_after, ending_before)
        except KeyError as exc:
            raise missing(
                type_, str(exc.args[0]), "starting_after" if starting_after else "ending_before"
            ) from None
        expand = [p.removeprefix("data.") for p in params.expand() if p.startswith("data.")]
        return {
            "object": "list",
            "data": [self.render(item, expand) for item in items],
            "has_more": has_more,
            "url": url,
        }


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as clients see it: fields starting with ``_`` are the sandbox's own."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}


def range_filters(params: Params, name: str) -> list[Filter]:
    """Stripe's range parameters: ``created=<ts>`` or ``created[gte]=<ts>`` and friends."""
    if not params.has(name):
        return []
    exact = params.data[name]
    if isinstance(exact, str):
        return [(name, "=", params.required_integer(name))]
    bounds = params.nested(name)
    if bounds is None:
        return []
    bounds.only("gt", "gte", "lt", "lte")
    operators = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    return [
        (name, operators[key], value)
        for key in operators
        if (value := bounds.integer(key)) is not None
    ]


def equal_filters(params: Params, *names: str) -> list[Filter]:
    return [(name, "=", value) for name in names if (value := params.string(name)) is not None]
