from datetime import UTC, datetime, timedelta

import jwt
import pytest

from domain.actors import Role
from domain.errors import AuthenticationError, ValidationError
from domain.tokens import mint, verify

SECRET = "unit-secret-0123456789-0123456789-0123456789"


def test_round_trip_keeps_subject_and_role() -> None:
    token = mint(subject="drv_7", role=Role.DRIVER, secret=SECRET, issuer="t", ttl=timedelta(60))
    actor = verify(token, secret=SECRET, issuer="t")
    assert (actor.id, actor.role) == ("drv_7", Role.DRIVER)


def test_expired_forged_and_foreign_tokens_are_refused() -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = mint(
        subject="u", role=Role.CUSTOMER, secret=SECRET, issuer="t", ttl=timedelta(hours=1), now=past
    )
    with pytest.raises(AuthenticationError) as caught:
        verify(expired, secret=SECRET, issuer="t")
    assert caught.value.code == "token_expired"
    forged = mint(
        subject="u", role=Role.PLATFORM_ADMIN, secret="x" * 40, issuer="t", ttl=timedelta(60)
    )
    with pytest.raises(AuthenticationError):
        verify(forged, secret=SECRET, issuer="t")
    other_issuer = mint(
        subject="u", role=Role.CUSTOMER, secret=SECRET, issuer="o", ttl=timedelta(60)
    )
    with pytest.raises(AuthenticationError):
        verify(other_issuer, secret=SECRET, issuer="t")
    # alg "none" takes no key ("" is PyJWT's typed spelling of None).
    unsigned = jwt.encode({"sub": "u", "role": "platform_admin", "iss": "t"}, "", algorithm="none")
    with pytest.raises(AuthenticationError):
        verify(unsigned, secret=SECRET, issuer="t")


def test_system_role_cannot_be_minted_nor_claimed() -> None:
    with pytest.raises(ValidationError):
        mint(subject="u", role=Role.SYSTEM, secret=SECRET, issuer="t", ttl=timedelta(60))
    claimed = jwt.encode(
        {"sub": "u", "role": "system", "iss": "t", "exp": datetime.now(UTC) + timedelta(60)},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(AuthenticationError):
        verify(claimed, secret=SECRET, issuer="t")


@pytest.mark.parametrize(
    "claims",
    [
        {"role": ["platform_admin"]},  # a list: once a TypeError, i.e. a 500
        {"role": {"name": "platform_admin"}},
        {"sub": ""},
        {"sub": "   "},
    ],
)
def test_a_role_that_is_not_a_string_or_an_empty_subject_is_refused(
    claims: dict[str, object],
) -> None:
    signed = jwt.encode(
        {
            "sub": "u",
            "role": "customer",
            "iss": "t",
            "exp": datetime.now(UTC) + timedelta(60),
            **claims,
        },
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(AuthenticationError) as caught:
        verify(signed, secret=SECRET, issuer="t")
    assert caught.value.code == "invalid_token"
