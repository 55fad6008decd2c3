"""Checks of what is typed in a console page's filters, before it reaches a query: a value
the database cannot compare (a NUL character) or longer than any stored one is refused
saying why, as the page's problem (a 400), never a server error."""

from domain.errors import ValidationError

MAX_FILTER_LENGTH = 200


def check_text(**values: str | None) -> None:
    """Refuse a filter value with a control character or longer than ``MAX_FILTER_LENGTH``."""
    for name, value in values.items():
        if value is None:
            continue
        if len(value) > MAX_FILTER_LENGTH:
            raise ValidationError(f"{name} is at most {MAX_FILTER_LENGTH} characters", param=name)
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValidationError(f"{name} must not contain control characters", param=name)
