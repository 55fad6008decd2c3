"""Maps ``(method, path)`` of ``/v1/`` requests to resource handlers."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A handler gets the context, the decoded parameters and the path's ids as keywords, and
# returns the Stripe object to send (or raises StripeError).
Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        """``template`` is like ``/v1/payment_intents/{intent}/capture``."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self._routes.append(Route(method, re.compile(f"^{regex}$"), handler))

    def get(self, template: str, handler: Handler) -> None:
        self.add("GET", template, handler)

    def post(self, template: str, handler: Handler) -> None:
        self.add("POST", template, handler)

    def delete(self, template: str, handler: Handler) -> None:
        self.add("DELETE", template, handler)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for route in self._routes:
            if route.method != method:
                continue
            match = route.pattern.match(path)
            if match:
                return route.handler, match.groupdict()
        return None
