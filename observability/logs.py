"""Structured logs: one JSON object per line (or readable text), with the ids that tie a line to
its request, workflow and activity, and with secrets and card data masked.

Every line carries ``ts``, ``level``, ``logger``, ``message`` and ``service``, and, where there
is one: ``request_id`` (the API request being served), ``workflow_id``, ``run_id``,
``workflow_type``, ``activity_id``, ``activity_type``, ``attempt``, ``task_queue`` (a Temporal
workflow or activity), ``trace_id`` and ``span_id`` (tracing on), any ``extra`` the caller gave,
and ``exception``. Temporal's ``workflow.logger`` and ``activity.logger`` put their ids in
``temporal_workflow`` / ``temporal_activity`` extras, which are flattened; a plain module logger
called inside an activity gets the activity's ids from the running activity's context.

Masking (:func:`redact`) runs on every string that leaves, message, extras and traceback
alike: values of sensitive keys (``authorization``, ``password``, ``*_secret``, ``api_key``,
``private_key``, ``token``, ``cvc``, ``card_number``...), ``Bearer``/``Basic`` credentials,
JWTs, Stripe secret keys (``sk_live_``, ``sk_test_``, ``rk_*``), webhook secrets (``whsec_``),
PEM private keys, passwords in URLs, ``name=value`` pairs of sensitive names (``private_key=0x…``,
``cvc: 123``), card numbers (13 to 19 digits that pass the Luhn check: all but the last four
masked), and every secret value the process was configured with (:func:`register_secrets`:
the Stripe key, the chain key, the JWT secret...). A bare 32-byte hex string is not masked by
shape alone: transaction hashes, block hashes and Merkle roots look the same and operators
need them; a private key is masked by its name or because it is a configured secret.
"""

import contextvars
import json
import logging
import logging.config
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]

#: The id of the API request being served; set by the API's request middleware.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tollgate_request_id", default=None
)

MASK = "[REDACTED]"

_SECRETS: set[str] = set()
_SECRET_PATTERN: re.Pattern[str] | None = None

# Extra fields that tracing adds when it is on (see observability.tracing).
_record_enrichers: list[Callable[[logging.LogRecord], None]] = []

_SENSITIVE_KEYS = {
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "x_api_key",
    "private_key",
    "privatekey",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "jwt",
    "cvc",
    "cvc2",
    "cvv",
    "cvv2",
    "security_code",
    "card_number",
    "pan",
    "stripe_signature",
    "webhook_signature",
    "signing_key",
    "mnemonic",
    "seed",
}
_SENSITIVE_SUFFIXES = ("_secret", "_password", "_private_key", "_api_key", "_token")

_SENSITIVE_NAME = (
    r"[A-Za-z0-9_.-]*?(?:private[_-]?key|secret|password|passwd|api[_-]?key|access[_-]?token|"
    r"refresh[_-]?token|auth[_-]?token|authorization|cvc2?|cvv2?|security[_-]?code|"
    r"card[_-]?number|mnemonic)"
)

_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        "[REDACTED PRIVATE KEY]",
    ),
    # name=value and "name": "value" of sensitive names, credentials schemes included.
    (
        re.compile(
            r"(?i)(" + _SENSITIVE_NAME + r"[\"']?\s*[:=]\s*[\"']?)"
            r"((?:bearer|basic)\s+)?[^\s\"',;&}\]]+"
        ),
        lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"\b((?:sk|rk)_(?:test|live)_|whsec_)[A-Za-z0-9_+/=]+"), rf"\1{MASK}"),
    # user:password@ in URLs
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), rf"\1{MASK}@"),
]

_CARD_CANDIDATE = re.compile(r"(?<![\w.-])(?:\d[ -]?){12,18}\d(?![\w-])")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if not 13 <= len(digits) <= 19 or not _luhn(digits):
        return match.group(0)
    return f"[REDACTED CARD ****{digits[-4:]}]"


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these exact values wherever they appear (with or without a ``0x`` prefix)."""
    global _SECRET_PATTERN
    for value in values:
        if value and len(value) >= 8:
            _SECRETS.add(value)
            if value.lower().startswith("0x"):
                _SECRETS.add(value[2:])
    if _SECRETS:
        alternatives = sorted(_SECRETS, key=len, reverse=True)
        _SECRET_PATTERN = re.compile("|".join(re.escape(value) for value in alternatives))


def redact(text: str) -> str:
    """``text`` with secrets, credentials and card numbers masked."""
    if _SECRET_PATTERN is not None:
        text = _SECRET_PATTERN.sub(MASK, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _CARD_CANDIDATE.sub(_mask_card, text)


def sensitive_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return name in _SENSITIVE_KEYS or name.endswith(_SENSITIVE_SUFFIXES)


def redact_value(value: Any, key: str | None = None) -> Any:
    """A JSON-friendly copy of ``value``, masked: strings by :func:`redact`, and whole values
    under sensitive keys."""
    if key is not None and sensitive_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return redact(str(value))


# LogRecord attributes that are not a caller's extras.
_STANDARD_ATTRIBUTES = set(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "color_message", "taskName"}

_CONTEXT_FIELDS = (
    "request_id",
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_id",
    "activity_type",
    "attempt",
    "task_queue",
    "trace_id",
    "span_id",
)


def _temporal_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Workflow and activity ids of the record: from the extras Temporal's loggers add, else
    from the activity running in this context (a module logger called inside an activity)."""
    fields: dict[str, Any] = {}
    details = getattr(record, "temporal_activity", None)
    if not isinstance(details, Mapping):
        activity = sys.modules.get("temporalio.activity")
        if activity is not None and activity.in_activity():
            info = activity.info()
            details = {
                "activity_id": info.activity_id,
                "activity_type": info.activity_type,
                "attempt": info.attempt,
                "task_queue": info.task_queue,
                "workflow_id": info.workflow_id,
                "workflow_run_id": info.workflow_run_id,
                "workflow_type": info.workflow_type,
            }
    if isinstance(details, Mapping):
        for name in ("activity_id", "activity_type", "attempt", "task_queue", "workflow_id"):
            fields[name] = details.get(name)
        fields["run_id"] = details.get("workflow_run_id")
        fields["workflow_type"] = details.get("workflow_type")
    workflow_details = getattr(record, "temporal_workflow", None)
    if isinstance(workflow_details, Mapping):
        for name in ("workflow_id", "run_id", "workflow_type", "attempt", "task_queue"):
            fields[name] = workflow_details.get(name)
        for name in ("update_id", "update_name"):
            if workflow_details.get(name) is not None:
                fields[name] = workflow_details[name]
    return {name: value for name, value in fields.items() if value is not None}


class ContextFilter(logging.Filter):
    """Puts the request, workflow, activity and trace ids on every record (as attributes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        for name, value in _temporal_fields(record).items():
            setattr(record, name, value)
        for enrich in _record_enrichers:
            enrich(record)
        return True


def _context(record: logging.LogRecord) -> dict[str, Any]:
    found = {name: getattr(record, name, None) for name in _CONTEXT_FIELDS}
    return {name: value for name, value in found.items() if value is not None}


# Temporal's own extras: flattened into the context fields, or (SDK core's forwarded lines)
# already in the message.
_TEMPORAL_EXTRAS = frozenset(
    {"temporal_workflow", "temporal_activity", "workflow_info", "activity_info", "temporal_log"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(record).items()
        if name not in _STANDARD_ATTRIBUTES
        and name not in _CONTEXT_FIELDS
        and name not in _TEMPORAL_EXTRAS
        and not name.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, masked."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service or _service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if self.service:
            entry["service"] = self.service
        entry.update(_context(record))
        for name, value in _extras(record).items():
            entry.setdefault(name, redact_value(value, name))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts level logger message key=value...`` for people reading a terminal, masked."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {**_context(record), **_extras(record)}
        if fields:
            pairs = " ".join(f"{k}={redact_value(v, k)}" for k, v in fields.items())
            first, newline, rest = line.partition("\n")
            line = f"{first} [{pairs}]{newline}{rest}"
        return redact(line)

    def formatException(self, ei: Any) -> str:
        return "".join(traceback.format_exception(*ei)).rstrip("\n")


_service: str | None = None


def logging_config(
    *, level: str = "INFO", fmt: LogFormat = "json", service: str | None = None
) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dictionary: the root logger writes to stderr through
    the formatter of ``fmt``; uvicorn's loggers hand their records to it (its access log is
    replaced by the API's own request log)."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"tollgate": {"()": formatter, "service": service}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "tollgate",
                "filters": ["context"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            **{
                name: {"level": level.upper(), "handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            # A line per HTTP call of any client (Stripe's SDK logs its own calls).
            **{name: {"level": "WARNING"} for name in ("httpx", "httpcore")},
            # Never below these, even at DEBUG: SQLAlchemy's engine logs every statement's
            # parameters and rows (card text, webhook endpoint secrets), Stripe's SDK every
            # request's form data and response body. Masking is the safety net, not the plan.
            "sqlalchemy.engine": {"level": "WARNING"},
            "sqlalchemy.pool": {"level": "WARNING"},
            "stripe": {"level": "INFO" if level.upper() == "DEBUG" else level.upper()},
        },
    }


def configure(
    *,
    level: str = "INFO",
    fmt: LogFormat = "json",
    service: str | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Set up the process's logging (idempotent: a second call replaces the first)."""
    global _service
    _service = service
    register_secrets(secrets)
    logging.config.dictConfig(logging_config(level=level, fmt=fmt, service=service))
    quiet_temporal_messages()


def quiet_temporal_messages() -> None:
    """Temporal's loggers append their ids to the message as a dict; ours print them as
    fields, so the message stays the message. Only if temporalio is loaded already."""
    activity = sys.modules.get("temporalio.activity")
    if activity is not None:
        activity.logger.activity_info_on_message = False
    workflow = sys.modules.get("temporalio.workflow")
    if workflow is not None:
        workflow.logger.workflow_info_on_message = False


def add_record_enricher(enrich: Callable[[logging.LogRecord], None]) -> None:
    if enrich not in _record_enrichers:
        _record_enrichers.append(enrich)
