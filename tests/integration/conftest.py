"""Integration tests go through the embedded stack (``tests/fixtures/stack.py``: one per test
session, shared with the browser tests) end to end over HTTP."""

from functools import partial

import pytest

from devstack.ephemeral import RunningStack
from tests.conftest import TokenFactory, token_headers
from tests.fixtures.stack import Names

__all__ = ["Names"]


@pytest.fixture
def auth(embedded: RunningStack) -> TokenFactory:
    """Tokens the embedded stack accepts (its JWT secret, not the unit tests')."""
    return partial(token_headers, embedded.settings)
