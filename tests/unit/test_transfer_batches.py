"""A batch's items checked whole (every error of every item, with its row), and a CSV upload
read into items (its shape checked, every malformed row listed)."""

import pytest

from domain.errors import ValidationError
from domain.rails import Rail, RoutingRules
from domain.transfers import (
    BatchStatus,
    TransferStatus,
    batch_outcome,
    check_items,
    check_transfer_move,
    idempotency_key,
)
from services.transfer_csv import parse_transfer_csv

ACCOUNT = "acct_1Payee"
ADDRESS = "0x" + "cd" * 20
RULES = RoutingRules()


def item(reference: str, **fields: object) -> dict[str, object]:
    return {
        "reference": reference,
        "destination": ACCOUNT,
        "amount": 1_000,
        "currency": "USD",
        **fields,
    }


def test_valid_items_come_back_routed_in_order() -> None:
    valid, errors = check_items(
        [item("a"), item("b", destination=ADDRESS, currency="USDC", description="gift")],
        "partner-a",
        RULES,
    )

    assert errors == []
    assert [(v.index, v.reference, v.rail) for v in valid] == [
        (0, "a", Rail.STRIPE),
        (1, "b", Rail.CHAIN),
    ]
    assert valid[1].description == "gift"


def test_every_error_of_every_item_is_reported_with_its_row() -> None:
    items = [
        item("ok-1"),
        {"reference": "", "destination": "nowhere", "amount": 12.5, "currency": "USD"},
        item("ok-1"),  # the same reference as row 1
        item("used-before"),
        item("bad-money", amount=-5, currency="XYZ"),
        "not an object",
        item("extra", colour="red"),
        item("usdc-to-stripe", currency="USDC"),
        item("text-amount", amount="12.50"),
        item("flag", amount=True),
    ]

    valid, errors = check_items(items, "partner-a", RULES, used_references={"used-before"})

    assert valid == []
    found = [(e.row, e.field, e.code) for e in errors]
    assert found == [
        (2, "reference", "missing"),
        (2, "amount", "invalid"),
        (2, "destination", "invalid_destination"),
        (3, "reference", "duplicate_reference"),
        (4, "reference", "reference_used"),
        (5, "amount", "invalid"),
        (5, "currency", "invalid_currency"),
        (6, None, "invalid_item"),
        (7, "colour", "unknown_field"),
        (8, "destination", "route_incompatible"),
        (9, "amount", "invalid"),
        (10, "amount", "invalid"),
    ]
    assert "row 1" in errors[3].message
    assert "minor units" in errors[-1].message


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_has_one_to_a_thousand_items(count: int) -> None:
    with pytest.raises(ValidationError) as refused:
        check_items([item(f"r{i}") for i in range(count)], "partner-a", RULES)
    assert refused.value.code == "batch_size"


def test_transfer_moves_and_batch_outcomes() -> None:
    check_transfer_move(TransferStatus.FAILED, TransferStatus.PENDING)
    with pytest.raises(Exception, match="cannot become"):
        check_transfer_move(TransferStatus.SUCCEEDED, TransferStatus.PENDING)
    assert batch_outcome(3, 0, 0) is BatchStatus.COMPLETED
    assert batch_outcome(2, 1, 0) is BatchStatus.PARTIALLY_COMPLETED
    assert batch_outcome(0, 2, 1) is BatchStatus.FAILED
    assert idempotency_key("abc") == "transfer-abc"
    assert idempotency_key("abc", 2) == "transfer-abc-retry-2"


def test_a_csv_becomes_items_with_integer_amounts() -> None:
    data = (
        "\ufeffReference , destination,AMOUNT,currency,description\r\n"
        f"inv-1,{ACCOUNT},1000,usd,first\r\n"
        f'inv-2,{ADDRESS},"2500",USDC,\r\n'
        "\r\n"
        f'inv-3,{ACCOUNT},12.50,USD,"with, a comma"\r\n'
    ).encode()

    items = parse_transfer_csv(data)

    assert items == [
        {
            "reference": "inv-1",
            "destination": ACCOUNT,
            "amount": 1000,
            "currency": "usd",
            "description": "first",
        },
        {"reference": "inv-2", "destination": ADDRESS, "amount": 2500, "currency": "USDC"},
        {
            "reference": "inv-3",
            "destination": ACCOUNT,
            "amount": "12.50",  # left as text: validation refuses it with the row
            "currency": "USD",
            "description": "with, a comma",
        },
    ]


def test_the_description_column_is_optional() -> None:
    items = parse_transfer_csv(
        f"currency,amount,destination,reference\nUSD,5,{ACCOUNT},x\n".encode()
    )
    assert items == [{"currency": "USD", "amount": 5, "destination": ACCOUNT, "reference": "x"}]


@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        (b"", "csv_invalid", "empty"),
        (b"reference,destination,amount,currency\n", "csv_invalid", "no transfer rows"),
        (b"\xff\xfe\x00r", "csv_invalid", "UTF-8"),
        (b"reference,amount,currency,iban\nx,1,USD,DE00\n", "csv_invalid", "header"),
        (
            b"reference,destination,amount,currency\n"
            + b"".join(f"r{i},{ACCOUNT},1,USD\n".encode() for i in range(1001)),
            "batch_size",
            "at most 1000",
        ),
    ],
)
def test_a_csv_of_the_wrong_shape_is_refused(data: bytes, code: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_transfer_csv(data)
    assert refused.value.code == code
    assert says in refused.value.message


def test_every_malformed_row_is_listed() -> None:
    data = (
        "reference,destination,amount,currency\n"
        f"a,{ACCOUNT},1,USD\n"
        f"b,{ACCOUNT},1\n"
        f"c,{ACCOUNT},1,USD\n"
        f"d,{ACCOUNT},1,USD,extra\n"
    ).encode()

    with pytest.raises(ValidationError) as refused:
        parse_transfer_csv(data)

    errors = refused.value.details["errors"]
    assert [(e["row"], e["code"]) for e in errors] == [(2, "invalid_row"), (4, "invalid_row")]


def test_the_header_problem_is_explained() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_transfer_csv(b"reference,amount,currency,iban\nx,1,USD,DE00\n")
    [error] = refused.value.details["errors"]
    assert error["row"] == 0
    assert "missing column(s) destination" in error["message"]
    assert "unknown column(s) iban" in error["message"]
