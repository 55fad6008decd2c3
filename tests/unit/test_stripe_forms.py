"""The sandbox's decoding of Stripe's form-encoded parameters."""

from urllib.parse import urlencode

import pytest

# The SDK's own encoder, so the sandbox is tested against the real wire format.
from stripe._encode import _api_encode

from devstack.stripe_sandbox.errors import StripeError
from devstack.stripe_sandbox.forms import FormError, as_list, decode_pairs, parse_form
from devstack.stripe_sandbox.params import Params


def test_flat_values_stay_strings() -> None:
    assert parse_form("amount=1000&currency=usd&confirm=true") == {
        "amount": "1000",
        "currency": "usd",
        "confirm": "true",
    }


def test_brackets_nest_hashes() -> None:
    body = "metadata[order]=42&card[number]=4242424242424242&a[b][c]=deep"
    assert parse_form(body) == {
        "metadata": {"order": "42"},
        "card": {"number": "4242424242424242"},
        "a": {"b": {"c": "deep"}},
    }


def test_empty_brackets_append_to_a_list() -> None:
    assert parse_form("expand[]=latest_charge&expand[]=customer") == {
        "expand": ["latest_charge", "customer"]
    }


def test_list_of_hashes_starts_a_new_element_when_a_key_repeats() -> None:
    pairs = [("items[][price]", "a"), ("items[][qty]", "1"), ("items[][price]", "b")]
    assert decode_pairs(pairs) == {"items": [{"price": "a", "qty": "1"}, {"price": "b"}]}


def test_indexed_keys_are_a_hash_that_as_list_reads_in_index_order() -> None:
    params = parse_form("expand[1]=b&expand[0]=a&expand[10]=c")
    assert params == {"expand": {"1": "b", "0": "a", "10": "c"}}
    assert as_list(params["expand"]) == ["a", "b", "c"]


def test_numeric_metadata_keys_stay_a_hash() -> None:
    assert parse_form("metadata[0]=zero")["metadata"] == {"0": "zero"}
    assert as_list({"x": "1"}) is None


def test_percent_encoding_and_blank_values() -> None:
    assert parse_form("description=caf%C3%A9+au+lait&metadata[note]=") == {
        "description": "café au lait",
        "metadata": {"note": ""},
    }


@pytest.mark.parametrize(
    "body", ["a=1&a[b]=2", "a[b]=2&a=1", "a[]=1&a=2", "a=1&a[]=2", "a]=1", "[a]=1"]
)
def test_conflicting_or_malformed_keys_are_refused(body: str) -> None:
    with pytest.raises(FormError):
        parse_form(body)


def test_decodes_what_the_stripe_sdk_encodes() -> None:
    params = {
        "amount": 1000,
        "confirm": True,
        "metadata": {"order": "o-1", "0": "zero"},
        "expand": ["latest_charge", "customer"],
        "card": {"number": "4242424242424242", "exp_month": 12},
    }
    body = urlencode(list(_api_encode(params)))
    decoded = Params(parse_form(body))
    assert decoded.required_integer("amount") == 1000
    assert decoded.boolean("confirm") is True
    assert decoded.metadata() == {"order": "o-1", "0": "zero"}
    assert decoded.expand() == ["latest_charge", "customer"]
    card = decoded.nested("card")
    assert card is not None and card.required_integer("exp_month") == 12


def test_metadata_merges_and_blank_values_remove_keys() -> None:
    current = {"keep": "1", "drop": "2"}
    assert Params(parse_form("metadata[drop]=&metadata[new]=3")).metadata(current) == {
        "keep": "1",
        "new": "3",
    }
    assert Params(parse_form("metadata=")).metadata(current) == {}


def test_unknown_parameters_and_bad_integers_are_stripe_400s() -> None:
    params = Params(parse_form("amount=ten&colour=red"))
    with pytest.raises(StripeError) as unknown:
        params.only("amount")
    assert unknown.value.status == 400
    assert unknown.value.body["code"] == "parameter_unknown"
    assert unknown.value.body["param"] == "colour"
    with pytest.raises(StripeError) as bad:
        params.required_integer("amount")
    assert bad.value.body["code"] == "parameter_invalid_integer"
    with pytest.raises(StripeError) as missing:
        params.required_string("currency")
    assert missing.value.body["code"] == "parameter_missing"
