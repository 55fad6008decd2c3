"""Typed reading of decoded request parameters, with Stripe's 400s for bad input."""

import re
from typing import Any

from .errors import invalid
from .forms import as_list

_CURRENCY = re.compile(r"^[a-z]{3}$")


class Params:
    """The parameters of one request. ``only`` rejects unknown names as Stripe does, which
    catches typos in calling code instead of silently ignoring them."""

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data = data
        self._prefix = prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}[{name}]" if self._prefix else name

    def only(self, *names: str) -> None:
        for name in self.data:
            if name not in names and name != "expand":
                raise invalid(
                    f"Received unknown parameter: {self._name(name)}",
                    code="parameter_unknown",
                    param=self._name(name),
                )

    def has(self, name: str) -> bool:
        return name in self.data

    def string(self, name: str, *, choices: tuple[str, ...] = ()) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise invalid(f"Invalid string: {self._name(name)}", param=self._name(name))
        if choices and value not in choices:
            raise invalid(
                f"Invalid {self._name(name)}: must be one of {', '.join(choices)}",
                param=self._name(name),
            )
        return value

    def required_string(self, name: str, *, choices: tuple[str, ...] = ()) -> str:
        value = self.string(name, choices=choices)
        if value is None:
            raise self._missing(name)
        return value

    def integer(self, name: str, *, minimum: int | None = None) -> int | None:
        raw = self.data.get(name)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
            raise invalid(
                f"Invalid integer: {raw}", code="parameter_invalid_integer", param=self._name(name)
            )
        value = int(raw)
        if minimum is not None and value < minimum:
            raise invalid(
                f"Invalid {self._name(name)}: must be at least {minimum}",
                code="parameter_invalid_integer",
                param=self._name(name),
            )
        return value

    def required_integer(self, name: str, *, minimum: int | None = None) -> int:
        value = self.integer(name, minimum=minimum)
        if value is None:
            raise self._missing(name)
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.data.get(name)
        if raw is None or raw == "":
            return None
        if raw not in ("true", "false"):
            raise invalid(f"Invalid boolean: {raw}", param=self._name(name))
        return bool(raw == "true")

    def currency(self) -> str:
        value = self.required_string("currency").lower()
        if not _CURRENCY.match(value):
            raise invalid(f"Invalid currency: {value}", param="currency")
        return value

    def strings(self, name: str) -> list[str] | None:
        raw = self.data.get(name)
        if raw is None:
            return None
        values = as_list(raw)
        if values is None or not all(isinstance(v, str) for v in values):
            raise invalid(f"Invalid array: {self._name(name)}", param=self._name(name))
        return values

    def nested(self, name: str) -> "Params | None":
        raw = self.data.get(name)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, dict):
            raise invalid(f"Invalid object: {self._name(name)}", param=self._name(name))
        return Params(raw, self._name(name))

    def metadata(self, current: dict[str, str] | None = None) -> dict[str, str]:
        """Stripe's merge semantics: keys are added or replaced, ``metadata[k]=`` removes k,
        ``metadata=`` clears everything."""
        merged = dict(current or {})
        raw = self.data.get("metadata")
        if raw is None:
            return merged
        if raw == "":
            return {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise invalid("Invalid hash: metadata", param="metadata")
        if len(raw) > 50:
            raise invalid("Metadata can have at most 50 keys", param="metadata")
        for key, value in raw.items():
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def expand(self) -> list[str]:
        return self.strings("expand") or []

    def _missing(self, name: str) -> Exception:
        return invalid(
            f"Missing required param: {self._name(name)}.",
            code="parameter_missing",
            param=self._name(name),
        )
