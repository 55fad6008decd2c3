"""Anchoring end to end on the embedded stack: tickets issued over HTTP, `tollgate anchors
run`, the proof fetched over HTTP and checked by `tollgate anchors verify-proof` against the
chain alone; and the contract refusing a second anchor of a root."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes
from httpx import AsyncClient
from typer.testing import CliRunner

from cli.main import app as cli
from devstack.ephemeral import REPO, RunningStack
from domain.errors import ChainRefused
from integrations.anchor_contract import AnchorContract
from integrations.chain import make_web3
from integrations.chain_transactions import ChainClient
from tests.conftest import TokenFactory
from tests.integration.conftest import Names
from tests.integration.test_tickets_http import issue

pytestmark = pytest.mark.integration


def tollgate(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The `tollgate` command, configured for the stack, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def verify_proof(proof: dict[str, Any], path: Path, *args: str) -> tuple[int, str]:
    path.write_text(json.dumps(proof))
    result = CliRunner().invoke(cli, ["anchors", "verify-proof", str(path), *args])
    return result.exit_code, result.output


async def test_anchor_run_then_proof_verifies_against_the_chain_alone(
    n: Names, embedded: RunningStack, stack_api: AsyncClient, auth: TokenFactory, tmp_path: Path
) -> None:
    tickets = [
        await issue(stack_api, auth, n, booking=n(f"bk-{i}"), user=n("rider")) for i in range(3)
    ]

    run = tollgate(embedded, "anchors", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "CONFIRMED" in run.stdout or "no ticket was waiting" in run.stdout

    ticket = tickets[1]
    response = await stack_api.get(
        f"/api/v1/tickets/{ticket['id']}/proof", headers=auth("customer", sub=n("rider"))
    )
    assert response.status_code == 200, response.text
    proof = response.json()
    assert proof["anchored"] is True and proof["status"] == "CONFIRMED"
    assert proof["confirmations"] >= 1 and proof["block_number"] >= 1
    assert proof["chain_id"] == 31337
    assert proof["contract_address"].lower() == embedded.settings.anchor_address().lower()

    rpc = embedded.settings.chain_rpc_url
    code, output = verify_proof(
        proof, tmp_path / "proof.json", "--rpc", rpc, "--payload", ticket["qr_payload"]
    )
    assert code == 0, output
    assert "the proof holds" in output

    other = tickets[0]["qr_payload"]
    code, output = verify_proof(proof, tmp_path / "p.json", "--rpc", rpc, "--payload", other)
    assert code == 1 and "FAIL ticket payload" in output

    if proof["siblings"]:
        forged = {**proof, "siblings": ["0x" + "00" * 32, *proof["siblings"][1:]]}
        code, output = verify_proof(forged, tmp_path / "forged.json", "--rpc", rpc)
        assert code == 1 and "FAIL merkle path" in output

    wrong_root = {**proof, "root": "0x" + "11" * 32}
    code, output = verify_proof(wrong_root, tmp_path / "root.json", "--rpc", rpc)
    assert code == 1 and "FAIL batch root" in output and "FAIL root anchored" in output

    stranger = await stack_api.get(
        f"/api/v1/tickets/{ticket['id']}/proof", headers=auth("customer", sub=n("stranger"))
    )
    assert stranger.status_code == 404


async def test_the_contract_refuses_a_second_anchor_of_a_root(
    n: Names, embedded: RunningStack, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    ticket = await issue(stack_api, auth, n)
    run = await stack_api.post("/api/v1/anchors/run", headers=auth("platform_admin"))
    assert run.status_code == 202, run.text
    assert tollgate(embedded, "anchors", "run").returncode == 0
    proof = (
        await stack_api.get(f"/api/v1/tickets/{ticket['id']}/proof", headers=auth("platform_admin"))
    ).json()
    assert proof["anchored"] is True
    settings = embedded.settings
    root = bytes.fromhex(proof["root"][2:])
    w3 = make_web3(settings.chain_rpc_url)
    anchor = AnchorContract(w3, settings.chain_rpc_url, settings.anchor_address())
    again = anchor.calldata(10**12 + proof["batch_id"], root, proof["tree_size"])
    client = ChainClient(settings.chain_rpc_url, settings.chain_sender_key())

    with pytest.raises(ChainRefused) as refused:
        client.estimate_gas(anchor.address, again, contract_name="Anchor", cap=10**6)
    assert refused.value.details["error"] == "RootAlreadyAnchored"

    # Sent regardless of the estimate, the contract itself reverts it.
    fees = client.suggest_fees(priority_fee=None, cap=settings.chain_max_fee_per_gas)
    signed = client.sign(
        chain_id=settings.chain_id,
        to=anchor.address,
        data=again,
        nonce=client.pending_nonce(),
        gas=200_000,
        fees=fees,
    )
    client.broadcast(signed.raw)
    receipt = w3.eth.wait_for_transaction_receipt(HexBytes(signed.tx_hash))
    assert receipt["status"] == 0
    assert anchor.batch_root(10**12 + proof["batch_id"]) == bytes(32)
    assert anchor.find_anchoring(proof["batch_id"]) is not None
