"""Anchoring figures, measured in one run:

- building the RFC 6962 tree of 100,000 tickets and every ticket's proof (goal <= 1 s),
  next to the bare hashing it needs (one SHA-256 per leaf and per inner node);
- storing a batch (tree, every ticket's proof, the tickets marked) of 10,000 and 100,000
  tickets on a scratch PostgreSQL: the database side of one anchoring run;
- gas of one ``Anchor.anchor(batchId, root, leafCount)`` transaction on a throwaway anvil,
  and what it comes to per ticket as batches grow (the previous service anchored 100-500
  tickets per transaction).
"""

import asyncio
import hashlib
import itertools
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import insert

from benchmarks.figures import Figure, emit
from devstack import postgres
from devstack.chain import anvil_command, deploy_once, wait_ready
from devstack.net import free_port
from devstack.supervisor import stop_process
from domain.actors import SYSTEM
from domain.merkle import MerkleTree
from integrations.chain import contract, make_web3
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.tickets import Ticket
from services import anchoring
from settings import ANVIL_DEV_PRIVATE_KEY, Settings

LEAVES = 100_000
RUNS = 5
BATCH_SIZES = (100, 500, 10_000, 100_000)
STORED_BATCH_SIZES = (10_000, 100_000)


def tree_figures(leaves: list[bytes]) -> None:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        MerkleTree(leaves).all_paths()
        samples.append(time.perf_counter() - started)
    tree_time = statistics.median(samples)

    # A tree of n leaves hashes n leaves and n - 1 inner nodes; an inner node's 65-byte input
    # takes two SHA-256 blocks to a leaf's one, so both are timed as the tree does them.
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for data in leaves:
        sha256(b"\x00" + data).digest()
    for left, right in itertools.pairwise(leaves):
        sha256(b"\x01" + left + right).digest()
    hashing_time = time.perf_counter() - started
    calls = 2 * len(leaves) - 1

    emit(
        f"anchoring: tree and all {LEAVES:,} proofs: median {tree_time:.3f} s of {RUNS} runs "
        f"(goal <= 1 s)",
        Figure(f"tree and all {LEAVES:,} proofs, median", tree_time, "s", goal=1.0),
    )
    emit(
        f"anchoring: the {calls:,} SHA-256 calls alone: {hashing_time:.3f} s "
        f"(tree/hashing {tree_time / hashing_time:.1f}x)",
        Figure(f"the {calls:,} SHA-256 calls alone", hashing_time, "s"),
        Figure("tree/hashing", tree_time / hashing_time, "x"),
    )


@contextmanager
def throwaway_chain(scratch: Path) -> Iterator[Settings]:
    """An empty anvil keeping its state under ``scratch``; stopped on exit."""
    port = free_port()
    settings = Settings(
        _env_file=None,
        data_dir=scratch,
        anvil_port=port,
        chain_rpc_url=f"http://127.0.0.1:{port}",
        # The environment may name a production key; only anvil's dev account is funded here.
        chain_private_key=SecretStr(ANVIL_DEV_PRIVATE_KEY),
    )
    log_path = scratch / "anvil.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            anvil_command(settings), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        try:
            wait_ready(settings.chain_rpc_url, timeout=15, process=process)
        except Exception as exc:
            raise RuntimeError(f"anvil did not start: {log_path.read_text()}") from exc
        yield settings
    finally:
        stop_process(process)


def gas_figures(settings: Settings, roots: dict[int, bytes]) -> None:
    w3 = make_web3(settings.chain_rpc_url)
    anchor = contract(w3, "Anchor", deploy_once(settings)["Anchor"])
    account = w3.eth.account.from_key(settings.chain_sender_key())
    chain_id = w3.eth.chain_id
    for batch_id, (leaf_count, root) in enumerate(roots.items(), start=1):
        tx = anchor.functions.anchor(batch_id, root, leaf_count).build_transaction(
            {
                "from": account.address,
                "nonce": w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": chain_id,
            }
        )
        signed = w3.eth.account.sign_transaction(tx, account.key)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        if receipt["status"] != 1:
            raise RuntimeError(f"anchoring batch {batch_id} reverted")
        gas = int(receipt["gasUsed"])
        emit(
            f"anchoring: batch of {leaf_count:>7,} tickets: {gas:,} gas per anchor, "
            f"{gas / leaf_count:,.2f} gas per ticket",
            Figure(f"gas per ticket, batch of {leaf_count:,}", gas / leaf_count, "gas"),
        )


async def batch_figures(url: str) -> None:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    try:
        for size in STORED_BATCH_SIZES:
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    insert(Ticket),
                    [
                        {
                            "id": uuid.uuid4(),
                            "booking_id": f"bench-{size}-{i}",
                            "user_id": f"rider-{i}",
                            "driver_id": "drv",
                            "trip": {},
                            "valid_from": now,
                            "valid_until": now + timedelta(hours=1),
                            "status": "ACTIVE",
                            "key_id": "bench",
                            "payload": os.urandom(90).hex(),
                        }
                        for i in range(size)
                    ],
                )
            started = time.perf_counter()
            async with sessionmaker() as session, session.begin():
                batch = await anchoring.create_batch(session, max_leaves=size, actor=SYSTEM)
            elapsed = time.perf_counter() - started
            assert batch is not None and batch.leaf_count == size
            emit(
                f"anchoring: storing a batch of {size:>7,} tickets with their proofs: "
                f"{elapsed:.2f} s ({elapsed / size * 1e6:.0f} us per ticket)",
                Figure(f"storing a batch of {size:,} tickets", elapsed, "s"),
            )
    finally:
        await engine.dispose()


async def stored_batches() -> None:
    port = free_port()
    with postgres.temporary_server(port):
        await asyncio.to_thread(postgres.ensure_database, port, "bench")
        url = postgres.url(port, "bench")
        await asyncio.to_thread(upgrade, url)
        await batch_figures(url)


def main() -> None:
    leaves = [os.urandom(32) for _ in range(LEAVES)]
    tree_figures(leaves)
    asyncio.run(stored_batches())
    # Distinct random leaves per batch give distinct roots, as the contract requires.
    roots = {size: MerkleTree([os.urandom(32) for _ in range(size)]).root for size in BATCH_SIZES}
    with tempfile.TemporaryDirectory() as scratch, throwaway_chain(Path(scratch)) as settings:
        gas_figures(settings, roots)


if __name__ == "__main__":
    main()
