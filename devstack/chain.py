"""The embedded chain: how to run anvil, and deploying Tollgate's contracts once per chain.

``deploy_once`` keeps ``settings.deployments_file`` as the record of where the contracts
live; ``make run`` calls it at every start, so a restarted anvil (whose state is persisted)
keeps its contracts, and a wiped or different chain gets a fresh deployment.
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
from integrations.chain import load_artifact, make_web3, ping, provider_errors
from settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ANVIL_CHAIN_ID = 31337
# Seconds between state dumps: a crash (no dump on exit) loses at most this much chain history.
ANVIL_STATE_INTERVAL = 5
CONTRACTS = ("Anchor",)


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


def deploy_once(settings: Settings) -> dict[str, str]:
    """Addresses of Tollgate's contracts on the configured chain, deploying them if needed.

    The saved deployment is reused when it is for this chain id and every contract's code on
    chain is what its committed artifact deploys; otherwise (fresh chain, other chain,
    recompiled contract) all contracts are deployed again with the sender key and the file
    is rewritten.
    """
    rpc_url = settings.chain_rpc_url
    path = settings.deployments_file
    w3 = make_web3(rpc_url)
    with provider_errors(rpc_url):
        chain_id = w3.eth.chain_id
        saved = _read_deployments(path)
        if saved is not None and _is_current(w3, saved, chain_id):
            return dict(saved["contracts"])

        account: LocalAccount = Account.from_key(settings.chain_sender_key())
        contracts: dict[str, str] = {}
        block = 0
        for name in CONTRACTS:
            contracts[name], block = _deploy(w3, account, chain_id, name)
    _write_atomically(
        path, {"chain_id": chain_id, "contracts": contracts, "deployed_at_block": block}
    )
    log.info("deployed %s on chain %d; saved to %s", contracts, chain_id, path)
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


def _is_current(w3: Web3, saved: dict[str, Any], chain_id: int) -> bool:
    if saved.get("chain_id") != chain_id:
        log.info("deployments file is for chain %s, node is %d", saved.get("chain_id"), chain_id)
        return False
    for name in CONTRACTS:
        address = saved["contracts"].get(name)
        if not isinstance(address, str) or not Web3.is_address(address):
            return False
        code = w3.eth.get_code(Web3.to_checksum_address(address))
        if not code:
            log.info("no code at saved %s address %s: the chain is new", name, address)
            return False
        # Simulating the creation returns the runtime code the artifact deploys, so a
        # recompiled contract is redeployed rather than called through a stale ABI.
        if code != w3.eth.call({"data": load_artifact(name)["bytecode"]}):
            log.info("code at %s differs from the %s artifact", address, name)
            return False
    return True


def _deploy(w3: Web3, account: LocalAccount, chain_id: int, name: str) -> tuple[str, int]:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor().build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": chain_id,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise RuntimeError(f"deploying {name} failed: transaction {tx_hash.hex()} reverted")
    return str(receipt["contractAddress"]), int(receipt["blockNumber"])


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
