"""Decoding of Stripe's v1 request parameters: form pairs with bracket nesting.

``metadata[order]=1`` becomes ``{"metadata": {"order": "1"}}``; ``expand[]=a`` appends to a
list; ``expand[0]=a`` (the SDK's indexed form) becomes ``{"expand": {"0": "a"}}`` because only
the endpoint knows whether a hash with numeric keys is a list (``expand``) or a map
(``metadata[0]``): ``as_list`` makes that call. Values stay strings, as on the wire.
"""

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """The form cannot be decoded (a key is malformed or used as both a value and a hash)."""


def parse_form(body: str) -> dict[str, Any]:
    """Decodes a urlencoded query string or request body."""
    return decode_pairs(parse_qsl(body, keep_blank_values=True))


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise FormError(f"Invalid parameter name: {key}")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        _assign(result, path, value, key)
    return result


def _assign(container: dict[str, Any], path: list[str], value: str, key: str) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if isinstance(container.get(head), dict | list):
            raise FormError(f"Parameter {key} is given both as a value and as a hash")
        container[head] = value
        return
    if rest[0] == "":
        items = container.setdefault(head, [])
        if not isinstance(items, list):
            raise FormError(f"Parameter {key} is given both as a list and as a value")
        _append(items, rest[1:], value, key)
        return
    child = container.setdefault(head, {})
    if not isinstance(child, dict):
        raise FormError(f"Parameter {key} is given both as a value and as a hash")
    _assign(child, rest, value, key)


def _append(items: list[Any], path: list[str], value: str, key: str) -> None:
    if not path:
        items.append(value)
        return
    # ``a[][x]=1&a[][y]=2&a[][x]=3``: a key seen again in the last element starts a new one.
    if not items or not isinstance(items[-1], dict) or path[0] in items[-1]:
        items.append({})
    _assign(items[-1], path, value, key)


def as_list(value: Any) -> list[Any] | None:
    """A list parameter in any of its wire forms: ``a[]=``, ``a[0]=``, or a single value."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if not all(k.isdigit() for k in value):
            return None
        return [value[k] for k in sorted(value, key=int)]
    if value == "":
        return []
    return [value]
