"""Business refusals are final for Temporal; provider failures stay retryable."""

import pytest
from temporalio.exceptions import ApplicationError

from activities.errors import business_errors
from domain.errors import CardDeclined, Conflict, NotFound, ProviderError


@pytest.mark.parametrize("error", [NotFound("gone"), Conflict("used"), CardDeclined("no")])
def test_business_errors_become_non_retryable(error: Exception) -> None:
    with pytest.raises(ApplicationError) as caught, business_errors():
        raise error
    assert caught.value.non_retryable
    assert caught.value.type == type(error).__name__


def test_provider_and_unexpected_errors_stay_retryable() -> None:
    with pytest.raises(ProviderError), business_errors():
        raise ProviderError("stripe is down")
    with pytest.raises(RuntimeError), business_errors():
        raise RuntimeError("bug")
