"""Fault injection on ``/v1/`` requests: 500s, 429s and timeouts.

A fault comes from, in order: the request's ``Sandbox-Fault`` header, the queue of scheduled
faults (``next``: one per request, so the SDK's own retry of that request goes through), or a
draw at the configured rate. ``500`` and ``429`` answer before the request runs; ``timeout``
runs it (money may move) and then holds the response for ``timeout_seconds``, longer than the
client waits, so only a retry with the same Idempotency-Key can learn the result.
"""

import random
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("500", "429", "timeout")
# Header value that turns faults off for one request (control traffic in a faulty sandbox).
NO_FAULT = "none"


@dataclass(frozen=True)
class FaultSettings:
    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    timeout_seconds: float = 2.0
    seed: int | None = None


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self._lock = threading.Lock()
        self._settings = FaultSettings()
        self._queue: deque[str] = deque()
        self._random = random.Random()
        self.configure(
            rate=settings.rate,
            kinds=settings.kinds,
            timeout_seconds=settings.timeout_seconds,
            seed=settings.seed,
        )

    @property
    def timeout_seconds(self) -> float:
        return self._settings.timeout_seconds

    def configure(
        self,
        *,
        rate: float | None = None,
        kinds: Iterable[str] | None = None,
        timeout_seconds: float | None = None,
        seed: int | None = None,
        next_faults: Iterable[str] | None = None,
    ) -> None:
        """Changes the given settings only; raises ValueError on a bad value."""
        with self._lock:
            changes: dict[str, Any] = {}
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("rate must be between 0 and 1")
                changes["rate"] = rate
            if kinds is not None:
                changes["kinds"] = _checked(kinds)
            if timeout_seconds is not None:
                if timeout_seconds < 0:
                    raise ValueError("timeout_seconds must not be negative")
                changes["timeout_seconds"] = timeout_seconds
            if seed is not None:
                changes["seed"] = seed
                self._random.seed(seed)
            if next_faults is not None:
                self._queue = deque(_checked(next_faults))
            self._settings = replace(self._settings, **changes)

    def choose(self, header: str | None) -> str | None:
        """The fault to inject into one request, if any."""
        if header is not None:
            header = header.strip().lower()
            if header == NO_FAULT:
                return None
            return _checked([header])[0]
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._settings.rate and self._settings.kinds:
                if self._random.random() < self._settings.rate:
                    return self._random.choice(self._settings.kinds)
        return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate": self._settings.rate,
                "kinds": list(self._settings.kinds),
                "timeout_seconds": self._settings.timeout_seconds,
                "seed": self._settings.seed,
                "next": list(self._queue),
            }


def _checked(kinds: Iterable[str]) -> tuple[str, ...]:
    result = tuple(str(kind) for kind in kinds)
    unknown = [kind for kind in result if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; expected some of {list(KINDS)}")
    return result
