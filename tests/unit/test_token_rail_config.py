"""Configuration of the chain rail's token: addresses people type, the token address setting,
where the test token is deployed, and the worker's chain queue registering the activities."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError as SettingsError

from devstack.chain import ANVIL_CHAIN_ID, TEST_TOKEN, contracts_for
from domain.chain_address import checksum_address
from domain.errors import ValidationError
from domain.money import CURRENCY_EXPONENTS
from integrations.chain import load_artifact
from settings import Settings
from worker import chain_activities

USDC_POLYGON = "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"


def test_checksum_address_accepts_checksummed_and_single_case() -> None:
    assert checksum_address(USDC_POLYGON) == USDC_POLYGON
    assert checksum_address(USDC_POLYGON.lower()) == USDC_POLYGON
    assert checksum_address("0x" + USDC_POLYGON[2:].upper()) == USDC_POLYGON


@pytest.mark.parametrize(
    "value",
    [
        USDC_POLYGON.replace("cEF5E", "cef5E"),  # mixed case, checksum broken by a typo
        USDC_POLYGON[:-1],
        USDC_POLYGON[2:],
        USDC_POLYGON + "00",
        "0x" + "g" * 40,
        "0x" + "0" * 40,
        None,
        42,
    ],
)
def test_checksum_address_refuses(value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        checksum_address(value, param="destination")
    assert refused.value.code == "invalid_address"
    assert refused.value.param == "destination"


def test_zero_address_only_when_allowed() -> None:
    assert checksum_address("0x" + "0" * 40, allow_zero=True) == "0x" + "0" * 40


def test_token_address_setting_wins_over_the_deployments_file(tmp_path: Path) -> None:
    (tmp_path / "chain.json").write_text(
        json.dumps({"chain_id": ANVIL_CHAIN_ID, "contracts": {TEST_TOKEN: "0x" + "12" * 20}})
    )
    assert Settings(data_dir=tmp_path, _env_file=None).token_address() == "0x" + "12" * 20
    configured = Settings(
        data_dir=tmp_path, chain_token_address=USDC_POLYGON.lower(), _env_file=None
    )
    assert configured.token_address() == USDC_POLYGON
    # docker-compose passes an unset variable as an empty string.
    empty = Settings(data_dir=tmp_path, chain_token_address="", _env_file=None)
    assert empty.chain_token_address is None


def test_a_mistyped_token_address_setting_is_refused() -> None:
    with pytest.raises(SettingsError, match="TOLLGATE_CHAIN_TOKEN_ADDRESS"):
        Settings(chain_token_address=USDC_POLYGON.replace("cEF5E", "cef5E"), _env_file=None)


def test_no_token_address_says_how_to_set_one(tmp_path: Path) -> None:
    (tmp_path / "chain.json").write_text(json.dumps({"contracts": {"Anchor": "0x" + "1" * 40}}))
    with pytest.raises(RuntimeError, match="TOLLGATE_CHAIN_TOKEN_ADDRESS"):
        Settings(data_dir=tmp_path, _env_file=None).token_address()


def test_the_test_token_is_deployed_on_development_chains_only() -> None:
    dev = Settings(_env_file=None)
    assert contracts_for(dev, ANVIL_CHAIN_ID) == ("Anchor", TEST_TOKEN)
    assert contracts_for(dev, 137) == ("Anchor",)  # Polygon: never a worthless token
    configured = Settings(chain_token_address=USDC_POLYGON, _env_file=None)
    assert contracts_for(configured, ANVIL_CHAIN_ID) == ("Anchor",)


def test_token_units_are_usdc_minor_units() -> None:
    # Amounts of the rail are token base units: the minor units of USDC in domain.money.
    assert Settings(_env_file=None).chain_token_decimals == 6 == CURRENCY_EXPONENTS["USDC"]
    abi = load_artifact(TEST_TOKEN)["abi"]
    assert {item["name"] for item in abi if item["type"] == "function"} >= {
        "transfer",
        "transferFrom",
        "approve",
        "allowance",
        "balanceOf",
        "totalSupply",
        "decimals",
        "mint",
    }


def test_the_chain_queue_registers_the_token_activities(tmp_path: Path) -> None:
    (tmp_path / "chain.json").write_text(
        json.dumps({"contracts": {"Anchor": "0x" + "1" * 40, TEST_TOKEN: "0x" + "2" * 40}})
    )
    names = {
        getattr(fn, "__temporal_activity_definition").name
        for fn in chain_activities(None, Settings(data_dir=tmp_path, _env_file=None))
    }
    assert {"send_token_transfer", "check_token_transfer", "submit_anchor_batch"} <= names
