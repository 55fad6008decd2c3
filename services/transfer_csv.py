"""A batch of transfers uploaded as CSV: the header ``reference,destination,amount,currency``
with an optional ``description`` column (any order, case and surrounding spaces ignored),
then one transfer per row, amounts in minor units (integers), at most 1,000 rows.

Only the file's shape is checked here (encoding, header, cells per row, row count); every
problem found is listed with its row (the header is row 0, the first transfer row 1), and
the rows become items for ``services.transfers`` to validate like JSON items.
"""

import csv
import io
import re
from typing import Any

from domain.errors import ValidationError
from domain.transfers import MAX_BATCH_ITEMS, ItemError

REQUIRED_COLUMNS = ("reference", "destination", "amount", "currency")
OPTIONAL_COLUMNS = ("description",)
# Larger than 1,000 generous rows; a bigger upload is refused before it is parsed.
MAX_CSV_BYTES = 2 * 1024 * 1024
_INTEGER = re.compile(r"[+-]?[0-9]+")


def csv_invalid(errors: list[ItemError], message: str) -> ValidationError:
    return ValidationError(
        message, code="csv_invalid", param="file", errors=[error.as_dict() for error in errors]
    )


def _amount(raw: str) -> Any:
    """An integer when the cell is one; otherwise the text, which validation refuses with a
    message about minor units."""
    text = raw.strip()
    return int(text) if _INTEGER.fullmatch(text) else text


def parse_transfer_csv(data: bytes) -> list[dict[str, Any]]:
    """The items of an uploaded CSV, or ``ValidationError`` ``csv_invalid`` listing every
    row whose shape is wrong (``details["errors"]``)."""
    if len(data) > MAX_CSV_BYTES:
        raise ValidationError(
            f"the CSV is larger than {MAX_CSV_BYTES // 1024} KiB", code="csv_invalid", param="file"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"the CSV is not UTF-8 text (byte {exc.start})", code="csv_invalid", param="file"
        ) from exc
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ValidationError(
            f"the CSV cannot be read: {exc}", code="csv_invalid", param="file"
        ) from exc
    # Blank lines (a trailing newline, an empty last line) are not rows.
    numbered = [row for row in rows if any(cell.strip() for cell in row)]
    if not numbered:
        raise ValidationError("the CSV is empty", code="csv_invalid", param="file")
    header = [cell.strip().lower() for cell in numbered[0]]
    errors: list[ItemError] = []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or repeated:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        if repeated:
            problems.append(f"repeated column(s) {', '.join(repeated)}")
        expected = ",".join(REQUIRED_COLUMNS) + "[," + OPTIONAL_COLUMNS[0] + "]"
        errors.append(
            ItemError(0, None, "invalid_header", f"{'; '.join(problems)} (expected {expected})")
        )
        raise csv_invalid(errors, "the CSV header is wrong")
    body = numbered[1:]
    if not body:
        raise ValidationError("the CSV has no transfer rows", code="csv_invalid", param="file")
    if len(body) > MAX_BATCH_ITEMS:
        raise ValidationError(
            f"a batch has at most {MAX_BATCH_ITEMS} rows, this CSV has {len(body)}",
            code="batch_size",
            param="file",
        )
    items: list[dict[str, Any]] = []
    for row_number, cells in enumerate(body, start=1):
        if len(cells) != len(header):
            errors.append(
                ItemError(
                    row_number,
                    None,
                    "invalid_row",
                    f"row has {len(cells)} cells, the header {len(header)}",
                )
            )
            continue
        item: dict[str, Any] = {}
        for column, cell in zip(header, cells, strict=True):
            item[column] = _amount(cell) if column == "amount" else cell.strip()
        if not item.get("description"):
            item.pop("description", None)
        items.append(item)
    if errors:
        raise csv_invalid(
            errors, f"{len(errors)} rows of the CSV are malformed: nothing was stored"
        )
    return items
