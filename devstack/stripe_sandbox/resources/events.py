"""``/v1/events`` and ``/v1/webhook_endpoints``."""

from typing import Any

from ..context import Context, equal_filters, range_filters
from ..errors import invalid
from ..params import Params
from ..routing import Router
from ..webhooks import new_secret


def retrieve_event(ctx: Context, params: Params, event: str) -> dict[str, Any]:
    return ctx.render(ctx.load("event", event), params.expand())


def list_events(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("limit", "starting_after", "ending_before", "created", "type", "types")
    filters = equal_filters(params, "type") + range_filters(params, "created")
    types = params.strings("types")
    if types:
        filters.append(("type", "in", types))
    return ctx.list_page("event", "/v1/events", params, filters)


def add_endpoint(
    ctx: Context, url: str, enabled_events: list[str], **fields: Any
) -> dict[str, Any]:
    endpoint = ctx.new_object(
        "we_",
        "webhook_endpoint",
        api_version=None,
        application=None,
        description=None,
        enabled_events=enabled_events,
        metadata={},
        status="enabled",
        url=url,
        _secret=ctx.config.webhook_secret or new_secret(),
    )
    endpoint.update(fields)
    ctx.store.insert(endpoint)
    return endpoint


def create_endpoint(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(
        "url",
        "enabled_events",
        "description",
        "metadata",
        "api_version",
        "connect",
    )
    endpoint = add_endpoint(
        ctx,
        _url(params),
        _enabled_events(params, required=True) or [],
        description=params.string("description"),
        metadata=params.metadata(),
        api_version=params.string("api_version"),
    )
    # The secret is shown once, on creation, as on Stripe.
    return {**ctx.render(endpoint, params.expand()), "secret": endpoint["_secret"]}


def _url(params: Params) -> str:
    url = params.required_string("url")
    if not url.startswith(("http://", "https://")):
        raise invalid(f"Invalid URL: {url}", code="url_invalid", param="url")
    return url


def _enabled_events(params: Params, *, required: bool) -> list[str] | None:
    events = params.strings("enabled_events")
    if events is None and not required:
        return None
    if not events:
        raise invalid(
            "Missing required param: enabled_events.",
            code="parameter_missing",
            param="enabled_events",
        )
    return events


def retrieve_endpoint(ctx: Context, params: Params, endpoint: str) -> dict[str, Any]:
    return ctx.render(ctx.load("webhook_endpoint", endpoint), params.expand())


def update_endpoint(ctx: Context, params: Params, endpoint: str) -> dict[str, Any]:
    params.only("url", "enabled_events", "description", "metadata", "disabled")
    obj = ctx.load("webhook_endpoint", endpoint)
    if params.has("url"):
        obj["url"] = _url(params)
    events = _enabled_events(params, required=False)
    if events is not None:
        obj["enabled_events"] = events
    if params.has("description"):
        obj["description"] = params.string("description")
    disabled = params.boolean("disabled")
    if disabled is not None:
        obj["status"] = "disabled" if disabled else "enabled"
    obj["metadata"] = params.metadata(obj["metadata"])
    ctx.store.update(obj)
    return ctx.render(obj, params.expand())


def delete_endpoint(ctx: Context, params: Params, endpoint: str) -> dict[str, Any]:
    params.only()
    ctx.load("webhook_endpoint", endpoint)
    ctx.store.delete(endpoint)
    return {"id": endpoint, "object": "webhook_endpoint", "deleted": True}


def list_endpoints(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("limit", "starting_after", "ending_before")
    return ctx.list_page("webhook_endpoint", "/v1/webhook_endpoints", params, [])


def register(router: Router) -> None:
    router.get("/v1/events", list_events)
    router.get("/v1/events/{event}", retrieve_event)
    router.post("/v1/webhook_endpoints", create_endpoint)
    router.get("/v1/webhook_endpoints", list_endpoints)
    router.get("/v1/webhook_endpoints/{endpoint}", retrieve_endpoint)
    router.post("/v1/webhook_endpoints/{endpoint}", update_endpoint)
    router.delete("/v1/webhook_endpoints/{endpoint}", delete_endpoint)
