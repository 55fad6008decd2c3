"""Standard Webhooks signatures (https://www.standardwebhooks.com): the three headers a
receiver checks.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256>`` of ``"{webhook-id}.{webhook-timestamp}.
{body}"`` under the key the ``whsec_`` secret encodes; during a secret rotation there is one
such signature per secret, separated by spaces, and a receiver accepts any of them.
"""

import base64
import hashlib
import hmac
from collections.abc import Sequence

from domain.webhooks import secret_key

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The signature headers of ``body`` sent at ``timestamp`` (unix seconds)."""
    if not secrets:
        raise ValueError("signing needs at least one secret")
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signature(s, message_id, timestamp, body) for s in secrets),
    }
