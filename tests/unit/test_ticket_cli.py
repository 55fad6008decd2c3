import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.tickets import tickets_app
from domain.tickets.claims import TicketClaims, ref
from domain.tickets.signing import KeyRing, public_keys_to_dict, sign

T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
RING = KeyRing.generate("k1")
TICKET = TicketClaims(
    ticket_id=uuid.uuid4(),
    booking_id="bk_1001",
    driver_id="drv_7",
    valid_from=T0,
    valid_until=T0 + timedelta(hours=2),
    key_id="k1",
)
PAYLOAD = sign(TICKET, RING)
runner = CliRunner()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(public_keys_to_dict(RING.public_keys())))
    return path


def run(payload: str, *options: str | Path) -> tuple[int, dict[str, object] | None, str]:
    # A base45 payload may begin with '-': it goes after `--`, as the help says.
    result = runner.invoke(tickets_app, ["verify-offline", *map(str, options), "--", payload])
    body = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, body, result.stderr


def test_a_valid_ticket_exits_0_with_its_claims(keys: Path) -> None:
    code, body, _ = run(PAYLOAD, "--keys", keys, "--now", "2030-01-01T09:00:00Z")
    assert code == 0
    assert body == {
        "valid": True,
        "reason": "valid",
        "ticket_id": str(TICKET.ticket_id),
        "booking_ref": ref("booking", "bk_1001").hex(),
        "driver_ref": ref("driver", "drv_7").hex(),
        "valid_from": "2030-01-01T08:00:00+00:00",
        "valid_until": "2030-01-01T10:00:00+00:00",
    }


def test_an_invalid_ticket_exits_1_with_the_reason(keys: Path) -> None:
    code, body, _ = run(PAYLOAD, "--keys", keys, "--now", "2030-01-01T12:00:00+02:00")
    assert (code, body and body["reason"]) == (1, "expired")
    code, body, _ = run("NOT A TICKET", "--keys", keys)
    assert code == 1
    assert body == {
        "valid": False,
        "reason": "malformed",
        "ticket_id": None,
        "booking_ref": None,
        "driver_ref": None,
        "valid_from": None,
        "valid_until": None,
    }


def test_the_scanning_driver_gets_only_their_own_tickets(keys: Path) -> None:
    at = ("--now", "2030-01-01T09:00:00Z")
    code, body, _ = run(PAYLOAD, "--keys", keys, *at, "--driver", "drv_7")
    assert (code, body and body["reason"]) == (0, "valid")
    for other in ("drv_8", "bk_1001"):
        code, body, _ = run(PAYLOAD, "--keys", keys, *at, "--driver", other)
        assert code == 1
        assert body is not None
        assert (body["valid"], body["reason"]) == (False, "wrong_driver")
        # The signature checked out, so the ticket's claims are shown.
        assert (body["ticket_id"], body["driver_ref"]) == (
            str(TICKET.ticket_id),
            ref("driver", "drv_7").hex(),
        )
    # Another reason found first wins over the driver's.
    code, body, _ = run(PAYLOAD, "--keys", keys, "--now", "2030-01-01T12:00Z", "--driver", "x")
    assert (code, body and body["reason"]) == (1, "expired")


def test_the_clock_is_the_default_now(keys: Path) -> None:
    code, body, _ = run(PAYLOAD, "--keys", keys)
    assert (code, body and body["reason"]) == (1, "not_yet_valid")


@pytest.mark.parametrize(
    "revocations",
    [
        {"data": [{"ticket_id": str(TICKET.ticket_id), "cancelled_at": "x"}], "has_more": False},
        [str(uuid.uuid4()), str(TICKET.ticket_id)],
    ],
)
def test_revocations_from_the_api_or_a_plain_list(
    keys: Path, tmp_path: Path, revocations: object
) -> None:
    revoked = tmp_path / "revoked.json"
    revoked.write_text(json.dumps(revocations))
    code, body, _ = run(PAYLOAD, "--keys", keys, "--revoked", revoked, "--now", "2030-01-01T09:00Z")
    assert (code, body and body["reason"]) == (1, "revoked")


@pytest.mark.parametrize(
    "content",
    [None, "{not json", '{"keys": [{"key_id": "k1"}]}', '{"keys": "x"}'],
)
def test_unreadable_keys_exit_2(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    code, body, stderr = run(PAYLOAD, "--keys", path)
    assert (code, body) == (2, None)
    assert f"cannot read {path}" in stderr


@pytest.mark.parametrize("content", ['{"data": "x"}', '["not-a-uuid"]', "[1]", "{"])
def test_unreadable_revocations_exit_2(keys: Path, tmp_path: Path, content: str) -> None:
    revoked = tmp_path / "revoked.json"
    revoked.write_text(content)
    code, body, _ = run(PAYLOAD, "--keys", keys, "--revoked", revoked)
    assert (code, body) == (2, None)


@pytest.mark.parametrize("now", ["yesterday", "2030-01-01T09:00:00"])
def test_now_must_be_an_instant_with_an_offset(keys: Path, now: str) -> None:
    code, body, _ = run(PAYLOAD, "--keys", keys, "--now", now)
    assert (code, body) == (2, None)


def test_a_payload_starting_with_a_dash_is_read_after_the_separator(keys: Path) -> None:
    # About one payload in 45 starts with '-', which an option parser would take for a flag.
    dashed = next(
        payload
        for payload in (
            sign(TicketClaims(**{**TICKET.__dict__, "ticket_id": uuid.uuid4()}), RING)
            for _ in range(10_000)
        )
        if payload.startswith("-")
    )
    code, body, _ = run(dashed, "--keys", keys, "--now", "2030-01-01T09:00:00Z")
    assert (code, body and body["reason"]) == (0, "valid")
