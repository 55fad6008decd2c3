"""The chain rail's token against a real anvil and a real PostgreSQL: TestUSD deployed with
its float, transfers sent through the token activities and the real serialized sender (one
transaction per transfer id, refusals that move and store nothing), and the ``Transfer``
events that reconciliation reads."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from activities.chain_sender import ChainSender, SenderConfig
from activities.token_transfers import TokenRailActivities, purpose_of
from devstack.chain import ANVIL_CHAIN_ID, TEST_TOKEN, TEST_TOKEN_FLOAT, deploy_once
from integrations.chain import contract, make_web3
from integrations.token_contract import TokenContract, TokenTransfer
from models.anchoring import ChainTransaction
from models.engine import make_engine, make_sessionmaker
from settings import ANVIL_DEV_PRIVATE_KEY, Settings
from tests.fixtures.chain import Deployment, deploy_contracts, run_anvil
from workflows.types import TokenTransferInput, TokenTransferResult

pytestmark = pytest.mark.integration

SENDER = Account.from_key(ANVIL_DEV_PRIVATE_KEY).address
GWEI = 10**9
STEP_TIMEOUT = 20.0

Sessionmaker = async_sessionmaker[AsyncSession]


def make_config(rpc_url: str) -> SenderConfig:
    return SenderConfig(
        rpc_url=rpc_url,
        chain_id=ANVIL_CHAIN_ID,
        private_key=SecretStr(ANVIL_DEV_PRIVATE_KEY),
        gas_cap=300_000,
        max_fee_per_gas=1_000 * GWEI,
        priority_fee=GWEI,
        resend_after=timedelta(hours=1),
        request_timeout=5.0,
    )


def payee() -> str:
    return str(Account.create().address)


def chain_nonce(rpc_url: str) -> int:
    return int(make_web3(rpc_url).eth.get_transaction_count(SENDER))


async def row_count(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ChainTransaction)) or 0)


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[Sessionmaker]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def token(deployment: Deployment) -> TokenContract:
    return TokenContract(make_web3(deployment.node.rpc_url), deployment.token_address)


@pytest.fixture
def rail(sessionmaker: Sessionmaker, deployment: Deployment) -> TokenRailActivities:
    sender = ChainSender(sessionmaker, make_config(deployment.node.rpc_url))
    token = TokenContract(sender.client.w3, deployment.token_address)
    return TokenRailActivities(sender, token, decimals=6, confirmations=2)


def request(
    destination: str, amount: int, transfer_id: uuid.UUID | None = None
) -> TokenTransferInput:
    return TokenTransferInput(
        transfer_id=transfer_id or uuid.uuid4(), destination=destination, amount=amount
    )


async def until_settled(rail: TokenRailActivities, req: TokenTransferInput) -> TokenTransferResult:
    """Checks until the transfer is final, mining empty blocks for the confirmations."""
    w3 = rail.token.w3
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            result = await rail.check_token_transfer(req)
            if result.status in ("CONFIRMED", "REVERTED", "MISMATCH"):
                return result
            if result.status == "MINED":
                w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            await asyncio.sleep(0.05)


def refusal(exc: pytest.ExceptionInfo[ApplicationError]) -> tuple[str | None, str, bool]:
    details = exc.value.details[0] if exc.value.details else {}
    return exc.value.type, details.get("code", ""), exc.value.non_retryable


def test_deployment_mints_the_float_and_records_the_token(
    deployment: Deployment, token: TokenContract
) -> None:
    raw = contract(token.w3, TEST_TOKEN, token.address)
    assert raw.functions.name().call() == "Tollgate Test USD"
    assert raw.functions.symbol().call() == "tUSD"
    assert token.decimals() == 6
    assert token.balance_of(SENDER) == TEST_TOKEN_FLOAT == 10**15
    assert raw.functions.totalSupply().call() == TEST_TOKEN_FLOAT
    assert raw.functions.owner().call() == SENDER

    saved = json.loads(deployment.settings.deployments_file.read_text())
    assert saved["contracts"][TEST_TOKEN] == deployment.token_address
    assert deployment.settings.token_address() == deployment.token_address
    (mint,) = token.transfers(0)
    assert mint.from_ == "0x" + "0" * 40 and mint.to == SENDER
    assert mint.amount == TEST_TOKEN_FLOAT


def test_a_token_added_later_is_deployed_alone(deployment: Deployment) -> None:
    # A chain from before the token existed: its file names the Anchor only.
    path = deployment.settings.deployments_file
    saved = json.loads(path.read_text())
    anchor = saved["contracts"]["Anchor"]
    path.write_text(json.dumps({**saved, "contracts": {"Anchor": anchor}}))
    before = chain_nonce(deployment.node.rpc_url)

    contracts = deploy_once(deployment.settings)

    assert contracts["Anchor"] == anchor, "a current Anchor must never be redeployed"
    assert contracts[TEST_TOKEN] != deployment.token_address
    assert chain_nonce(deployment.node.rpc_url) == before + 2  # the token, then its mint
    token = TokenContract(make_web3(deployment.node.rpc_url), contracts[TEST_TOKEN])
    assert token.balance_of(SENDER) == TEST_TOKEN_FLOAT


async def test_transfer_moves_the_amount_once_and_is_confirmed(
    rail: TokenRailActivities, token: TokenContract, sessionmaker: Sessionmaker
) -> None:
    to, amount = payee(), 12_345_678  # 12.345678 tUSD
    start = token.latest_block() + 1
    nonce = chain_nonce(rail.sender.config.rpc_url)
    req = request(to.lower(), amount)  # an all-lowercase address is fine: no checksum to check

    sent = await rail.send_token_transfer(req)
    assert sent.status in ("PENDING", "MINED") and sent.tx_hash

    settled = await until_settled(rail, req)
    assert settled.status == "CONFIRMED", settled.error
    assert settled.tx_hash == sent.tx_hash
    assert settled.amount == amount and settled.destination == to
    assert settled.confirmations >= 2 and settled.block is not None and settled.error is None

    assert token.balance_of(to) == amount
    assert token.balance_of(SENDER) == TEST_TOKEN_FLOAT - amount
    expected = TokenTransfer(
        tx_hash=sent.tx_hash,
        log_index=0,
        block=settled.block,
        from_=SENDER,
        to=to,
        amount=amount,
    )
    assert token.transfers(start, sender=SENDER) == [expected]
    assert token.transfers(start, recipient=to) == [expected]
    assert token.transfers_in(sent.tx_hash) == [expected]
    assert chain_nonce(rail.sender.config.rpc_url) == nonce + 1
    async with sessionmaker() as session:
        (row,) = await session.scalars(select(ChainTransaction))
    assert row.purpose == purpose_of(req.transfer_id) == f"transfer-{req.transfer_id}"
    assert row.to_address == token.address


async def test_the_same_transfer_sent_twice_broadcasts_once(
    rail: TokenRailActivities, token: TokenContract, sessionmaker: Sessionmaker
) -> None:
    to, amount = payee(), 5_000_000
    nonce = chain_nonce(rail.sender.config.rpc_url)
    req = request(to, amount)

    first, second = await asyncio.gather(
        rail.send_token_transfer(req), rail.send_token_transfer(req)
    )
    again = await rail.send_token_transfer(req)  # a retried activity, after the fact
    settled = await until_settled(rail, req)
    after = await rail.send_token_transfer(req)  # a re-run workflow, once confirmed

    assert first.tx_hash == second.tx_hash == again.tx_hash == settled.tx_hash == after.tx_hash
    assert after.status == "CONFIRMED"
    assert token.balance_of(to) == amount
    assert len(token.transfers(0, recipient=to)) == 1
    assert chain_nonce(rail.sender.config.rpc_url) == nonce + 1
    assert await row_count(sessionmaker) == 1

    # The same transfer id with another amount is a conflict, never a second payment.
    with pytest.raises(ApplicationError) as reused:
        await rail.send_token_transfer(request(to, amount + 1, req.transfer_id))
    assert refusal(reused) == ("Conflict", "transfer_mismatch", True)
    assert token.balance_of(to) == amount
    assert chain_nonce(rail.sender.config.rpc_url) == nonce + 1


async def test_insufficient_float_is_refused_with_nothing_moved(
    rail: TokenRailActivities, token: TokenContract, sessionmaker: Sessionmaker
) -> None:
    to = payee()
    nonce = chain_nonce(rail.sender.config.rpc_url)
    req = request(to, TEST_TOKEN_FLOAT + 1)

    with pytest.raises(ApplicationError) as refused:
        await rail.send_token_transfer(req)

    assert refusal(refused) == ("ChainRefused", "contract_revert", True)
    assert "ERC20InsufficientBalance" in str(refused.value)
    assert token.balance_of(to) == 0
    assert token.balance_of(SENDER) == TEST_TOKEN_FLOAT
    assert chain_nonce(rail.sender.config.rpc_url) == nonce
    assert await row_count(sessionmaker) == 0
    with pytest.raises(ApplicationError) as never_sent:
        await rail.check_token_transfer(req)
    assert refusal(never_sent)[0] == "NotFound"

    # Nothing was recorded, so once the float is topped up the same transfer id goes through.
    raw = contract(token.w3, TEST_TOKEN, token.address)
    token.w3.eth.wait_for_transaction_receipt(
        raw.functions.mint(SENDER, 1).transact({"from": SENDER})
    )
    await rail.send_token_transfer(req)
    assert (await until_settled(rail, req)).status == "CONFIRMED"
    assert token.balance_of(to) == TEST_TOKEN_FLOAT + 1
    assert token.balance_of(SENDER) == 0


@pytest.mark.parametrize(
    ("destination", "amount", "param"),
    [
        ("0x" + "ab" * 19, 1, "destination"),  # 19 bytes
        ("ab" * 20, 1, "destination"),  # no 0x
        ("0x" + "0" * 40, 1, "destination"),
        ("checksum-typo", 1, "destination"),
        (None, 0, "amount"),
        (None, -5, "amount"),
        ("token", 1, "destination"),
        ("sender", 1, "destination"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_signed(
    rail: TokenRailActivities,
    sessionmaker: Sessionmaker,
    destination: str | None,
    amount: int,
    param: str,
) -> None:
    good = payee()
    if destination == "checksum-typo":
        # One letter's case flipped: web3's is_address would still accept it.
        i = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
        destination = good[:i] + good[i].swapcase() + good[i + 1 :]
    elif destination == "token":
        destination = rail.token.address
    elif destination == "sender":
        destination = SENDER.lower()
    nonce = chain_nonce(rail.sender.config.rpc_url)

    with pytest.raises(ApplicationError) as refused:
        await rail.send_token_transfer(request(destination or good, amount))

    assert refusal(refused)[0] == "ValidationError" and refused.value.non_retryable
    assert param in str(refused.value)
    assert await row_count(sessionmaker) == 0
    assert chain_nonce(rail.sender.config.rpc_url) == nonce


async def test_a_token_with_other_decimals_is_refused(
    rail: TokenRailActivities, sessionmaker: Sessionmaker
) -> None:
    misconfigured = TokenRailActivities(rail.sender, rail.token, decimals=18, confirmations=1)
    with pytest.raises(ApplicationError) as refused:
        await misconfigured.send_token_transfer(request(payee(), 1))
    assert refusal(refused) == ("ChainRefused", "token_decimals_mismatch", True)
    assert await row_count(sessionmaker) == 0


async def test_scans_return_transfers_in_chain_order_within_the_range(
    rail: TokenRailActivities, token: TokenContract
) -> None:
    w3 = token.w3
    raw = contract(w3, TEST_TOKEN, token.address)
    alice, bob = payee(), payee()
    other = list(w3.eth.accounts)[1]  # anvil's unlocked second account: not the platform
    start = token.latest_block() + 1

    # Four of the platform's transfers, and one of someone else's, over five blocks.
    hashes = []
    for to, amount in [(alice, 1), (bob, 2), (other, 30), (alice, 4)]:
        req = request(to, amount)
        await rail.send_token_transfer(req)
        hashes.append((await until_settled(rail, req)).tx_hash)
    w3.eth.wait_for_transaction_receipt(raw.functions.transfer(bob, 7).transact({"from": other}))
    end = token.latest_block()

    everything = token.transfers(start, end)
    assert [(t.to, t.amount) for t in everything] == [
        (alice, 1),
        (bob, 2),
        (other, 30),
        (alice, 4),
        (bob, 7),
    ]
    assert [t.tx_hash for t in everything[:4]] == hashes
    assert everything[4].from_ == other
    assert [(t.block, t.log_index) for t in everything] == sorted(
        (t.block, t.log_index) for t in everything
    )

    # Scanned in windows of one and two blocks: the same, in the same order.
    for window in (1, 2):
        narrow = TokenContract(w3, token.address, block_range=window)
        assert narrow.transfers(start, end) == everything
        assert narrow.transfers(start) == everything  # up to the latest block

    platform = token.transfers(start, end, sender=SENDER)
    assert platform == everything[:4]
    assert token.transfers(start, end, recipient=bob) == [everything[1], everything[4]]
    assert token.transfers(start, end, sender=other, recipient=bob) == [everything[4]]

    # Bounds are inclusive and nothing outside them is returned.
    second, fourth = everything[1].block, everything[3].block
    assert token.transfers(second, fourth) == [t for t in everything if second <= t.block <= fourth]
    assert token.transfers(end + 1, end + 1) == []


def test_a_configured_token_is_not_deployed(deployment: Deployment, tmp_path: Path) -> None:
    usdc = "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"
    settings = Settings(
        chain_rpc_url=deployment.node.rpc_url,
        data_dir=tmp_path / "configured",
        chain_token_address=usdc,
        _env_file=None,
    )
    before = chain_nonce(deployment.node.rpc_url)

    contracts = deploy_once(settings)

    assert set(contracts) == {"Anchor"}
    assert chain_nonce(deployment.node.rpc_url) == before + 1
    assert settings.token_address() == usdc


async def test_transfers_racing_for_the_float_the_loser_reverts_and_moves_nothing(
    sessionmaker: Sessionmaker, tmp_path: Path
) -> None:
    # Both are estimated against the last block, where the float covers each of them; mined
    # together, the second finds the float spent.
    with run_anvil(tmp_path / "manual") as node:
        deployment = deploy_contracts(node, tmp_path / "manual")
        sender = ChainSender(sessionmaker, make_config(node.rpc_url))
        token = TokenContract(sender.client.w3, deployment.token_address)
        rail = TokenRailActivities(sender, token, decimals=6, confirmations=1)
        token.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        winner, loser = request(payee(), TEST_TOKEN_FLOAT), request(payee(), 1)

        assert (await rail.send_token_transfer(winner)).status == "PENDING"
        assert (await rail.send_token_transfer(loser)).status == "PENDING"
        token.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        won = await rail.check_token_transfer(winner)
        lost = await rail.check_token_transfer(loser)
        assert won.status == "CONFIRMED" and won.amount == TEST_TOKEN_FLOAT
        assert lost.status == "REVERTED" and lost.amount is None
        assert lost.error is not None and "nothing moved" in lost.error
        assert lost.block == won.block
        assert token.balance_of(loser.destination) == 0
        assert token.transfers(lost.block or 0, recipient=loser.destination) == []
        # Final: asking again reports the same revert, and signs nothing new.
        again = await rail.send_token_transfer(loser)
        assert again.status == "REVERTED" and again.tx_hash == lost.tx_hash
        assert await row_count(sessionmaker) == 2
