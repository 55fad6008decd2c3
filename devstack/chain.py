"""The embedded chain: how to run anvil, and deploying Tollgate's contracts once per chain.

``deploy_once`` keeps ``settings.deployments_file`` as the record of where the contracts
live; ``make run`` calls it at every start, so a restarted anvil (whose state is persisted)
keeps its contracts, and a wiped or different chain gets a fresh deployment. On a development
chain it also deploys ``TestUSD``, the chain rail's test token, and mints its float to the
sender; elsewhere the token is a setting (``TOLLGATE_CHAIN_TOKEN_ADDRESS``, e.g. USDC).
"""

import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from domain.errors import ProviderError
from integrations.chain import contract, load_artifact, make_web3, ping, provider_errors
from settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ANVIL_CHAIN_ID = 31337
# Seconds between state dumps: a crash (no dump on exit) loses at most this much chain history.
ANVIL_STATE_INTERVAL = 5
CONTRACTS = ("Anchor",)
# The chain rail's ERC-20 on development chains, and the float minted to the sender when it
# is deployed: 10^15 base units = 10^9 tUSD at 6 decimals.
TEST_TOKEN = "TestUSD"
TEST_TOKEN_FLOAT = 10**15
DEVELOPMENT_CHAIN_IDS = frozenset({ANVIL_CHAIN_ID})


def anvil_binary() -> Path:
    """The platform binary that npm's ``@foundry-rs/anvil`` installed.

    Not the ``node_modules/.bin/anvil`` wrapper: on SIGTERM it exits without waiting for the
    binary to dump its state, and when killed it leaves the binary running on the port.
    """
    found = sorted((REPO_ROOT / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    return found[0] if found else REPO_ROOT / "node_modules" / ".bin" / "anvil"


def anvil_state_file(settings: Settings) -> Path:
    return (settings.data_dir / "anvil" / "state.json").resolve()


def anvil_command(settings: Settings) -> list[str]:
    """The command line of the embedded anvil; creates its state directory.

    ``--state`` loads the file at start and dumps it on exit (SIGTERM/SIGINT), but silently
    dumps nothing when the directory is missing, hence the mkdir here.
    """
    state_file = anvil_state_file(settings)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    return [
        str(anvil_binary()),
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.anvil_port),
        "--chain-id",
        str(ANVIL_CHAIN_ID),
        "--state",
        str(state_file),
        "--state-interval",
        str(ANVIL_STATE_INTERVAL),
        # Without it anvil logs every RPC call; fatal errors still go to stderr.
        "--quiet",
    ]


def wait_ready(
    rpc_url: str, timeout: float = 30.0, *, process: subprocess.Popen[Any] | None = None
) -> dict[str, int]:
    """Polls ``ping`` until the node answers; fails early if ``process`` (the node) exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ProviderError(
                f"chain node exited with code {process.returncode} before answering at {rpc_url}"
            )
        try:
            return ping(rpc_url, request_timeout=1.0)
        except ProviderError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


def contracts_for(settings: Settings, chain_id: int) -> tuple[str, ...]:
    """The contracts Tollgate deploys on ``chain_id``: the Anchor everywhere; the test token
    only on a development chain whose token is not configured, never a worthless token on a
    real chain."""
    if chain_id in DEVELOPMENT_CHAIN_IDS and not settings.chain_token_address:
        return (*CONTRACTS, TEST_TOKEN)
    return CONTRACTS


def deploy_once(settings: Settings) -> dict[str, str]:
    """Addresses of Tollgate's contracts on the configured chain, deploying them if needed.

    A saved contract is reused when the file is for this chain id and the contract's code on
    chain is what its committed artifact deploys; the others (fresh chain, other chain,
    recompiled or newly added contract) are deployed with the sender key, and the file is
    rewritten. A newly deployed test token mints ``TEST_TOKEN_FLOAT`` to the sender.
    """
    rpc_url = settings.chain_rpc_url
    path = settings.deployments_file
    w3 = make_web3(rpc_url)
    with provider_errors(rpc_url):
        chain_id = w3.eth.chain_id
        names = contracts_for(settings, chain_id)
        saved = _read_deployments(path)
        contracts = _current(w3, saved, chain_id, names) if saved is not None else {}
        missing = [name for name in names if name not in contracts]
        if not missing:
            return contracts

        account: LocalAccount = Account.from_key(settings.chain_sender_key())
        block = 0
        for name in missing:
            contracts[name], block = _deploy(w3, account, chain_id, name)
            if name == TEST_TOKEN:
                block = _mint(w3, account, chain_id, contracts[name], TEST_TOKEN_FLOAT)
    contracts = {name: contracts[name] for name in names}
    _write_atomically(
        path, {"chain_id": chain_id, "contracts": contracts, "deployed_at_block": block}
    )
    log.info("deployed %s on chain %d; saved to %s", missing, chain_id, path)
    return contracts


def _read_deployments(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable deployments file %s: %s", path, exc)
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("contracts"), dict):
        log.warning("ignoring malformed deployments file %s", path)
        return None
    return saved


def _current(
    w3: Web3, saved: dict[str, Any], chain_id: int, names: tuple[str, ...]
) -> dict[str, str]:
    """The saved addresses of ``names`` that still hold their artifact's code."""
    if saved.get("chain_id") != chain_id:
        log.info("deployments file is for chain %s, node is %d", saved.get("chain_id"), chain_id)
        return {}
    current: dict[str, str] = {}
    for name in names:
        address = saved["contracts"].get(name)
        if not isinstance(address, str) or not Web3.is_address(address):
            continue
        code = w3.eth.get_code(Web3.to_checksum_address(address))
        if not code:
            log.info("no code at saved %s address %s: the chain is new", name, address)
            continue
        # Simulating the creation returns the runtime code the artifact deploys, so a
        # recompiled contract is redeployed rather than called through a stale ABI.
        if code != w3.eth.call({"data": load_artifact(name)["bytecode"]}):
            log.info("code at %s differs from the %s artifact", address, name)
            continue
        current[name] = address
    return current


def _deploy(w3: Web3, account: LocalAccount, chain_id: int, name: str) -> tuple[str, int]:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = _transact(w3, account, chain_id, factory.constructor(), f"deploying {name}")
    if not receipt["contractAddress"]:
        raise RuntimeError(f"deploying {name} created no contract")
    return str(receipt["contractAddress"]), int(receipt["blockNumber"])


def _mint(w3: Web3, account: LocalAccount, chain_id: int, token: str, amount: int) -> int:
    """Mints ``amount`` of the test token to the sender; the block it was mined in."""
    minting = contract(w3, TEST_TOKEN, token).functions.mint(account.address, amount)
    receipt = _transact(w3, account, chain_id, minting, f"minting {TEST_TOKEN}")
    return int(receipt["blockNumber"])


def _transact(w3: Web3, account: LocalAccount, chain_id: int, call: Any, what: str) -> Any:
    tx = call.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": chain_id,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise RuntimeError(f"{what} failed: transaction {tx_hash.hex()} reverted")
    return receipt


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    # A crash mid-write must leave the previous file or the new one, never half of one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
