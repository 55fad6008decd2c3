"""``tollgate anchors``: run anchoring now, and check a ticket's proof against the chain alone."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from domain.anchor_proofs import AnchorProof, ticket_leaf
from domain.errors import ProviderError

anchors_app = typer.Typer(help="Anchoring tickets on chain.", no_args_is_help=True)


@anchors_app.command("run")
def run_now(
    wait: Annotated[bool, typer.Option(help="Wait for the run and print its batches.")] = True,
) -> None:
    """Anchor every waiting ticket now: the same workflow the Schedule runs every 15 minutes."""
    from cli.client_process import connect, run_then_exit
    from schedules import anchor_run_input
    from settings import get_settings
    from workflows.anchoring import AnchorTicketsWorkflow

    settings = get_settings()

    async def start() -> int:
        client = await connect(settings)
        handle = await client.start_workflow(
            AnchorTicketsWorkflow.run,
            anchor_run_input(settings),
            id=f"tickets-anchoring-cli-{uuid.uuid4()}",
            task_queue=settings.task_queue,
        )
        typer.echo(f"started {handle.id}")
        if not wait:
            return 0
        result = await handle.result()
        if not result.batches:
            typer.echo("no ticket was waiting")
        for batch in result.batches:
            line = f"batch {batch.batch_id}: {batch.leaf_count} tickets, {batch.status}"
            if batch.tx_hash:
                line += f", transaction {batch.tx_hash}"
            if batch.error:
                line += f" ({batch.error})"
            typer.echo(line)
        return int(any(batch.status != "CONFIRMED" for batch in result.batches))

    run_then_exit(start())


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@anchors_app.command("verify-proof")
def verify_proof(
    proof_file: Annotated[
        Path, typer.Argument(help="PROOF.json: the body of GET /api/v1/tickets/{id}/proof.")
    ],
    rpc: Annotated[str, typer.Option(help="JSON-RPC URL of any node of the proof's chain.")],
    payload: Annotated[
        str | None,
        typer.Option(help="The ticket's QR payload: also check that the proof is for it."),
    ] = None,
    min_confirmations: Annotated[
        int, typer.Option(min=1, help="Blocks on top of (and including) the anchoring one.")
    ] = 1,
) -> None:
    """Check a ticket's anchor proof with no database: the Merkle path from the leaf to the
    root, then on chain that the contract recorded that root for the batch, in the named
    transaction, with enough confirmations. Exit 0 if every check passes, 1 if one fails."""
    try:
        document = json.loads(proof_file.read_text())
        if not isinstance(document, dict):
            raise ValueError("the file is not a JSON object")
        proof = AnchorProof.from_document(document)
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot read {proof_file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    checks = [
        Check("merkle path", proof.path_verifies(), f"leaf {proof.leaf_index} of {proof.tree_size}")
    ]
    if payload is not None:
        checks.append(
            Check(
                "ticket payload",
                ticket_leaf(payload) == proof.leaf,
                "SHA-256 of the payload is the leaf",
            )
        )
    try:
        checks += chain_checks(proof, rpc, min_confirmations)
    except ProviderError as exc:
        typer.echo(f"the chain did not answer: {exc}", err=True)
        raise typer.Exit(1) from exc
    for check in checks:
        typer.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        typer.echo("the proof does NOT hold")
        raise typer.Exit(1)
    typer.echo("the proof holds: the ticket was anchored on chain")


def chain_checks(proof: AnchorProof, rpc: str, min_confirmations: int) -> list[Check]:
    from integrations.anchor_contract import AnchorContract
    from integrations.chain import make_web3, provider_errors

    w3 = make_web3(rpc, retry=False)
    with provider_errors(rpc):
        chain_id = int(w3.eth.chain_id)
        checks = [
            Check(
                "chain",
                chain_id == proof.chain_id,
                f"node is chain {chain_id}, proof names {proof.chain_id}",
            )
        ]
        if chain_id != proof.chain_id:
            return checks
        has_code = bool(w3.eth.get_code(w3.to_checksum_address(proof.contract_address)))
        checks.append(Check("contract", has_code, f"code at {proof.contract_address}"))
        if not has_code:
            return checks
        contract = AnchorContract(w3, rpc, proof.contract_address)
        on_chain = contract.batch_root(proof.batch_id)
        checks.append(
            Check(
                "batch root",
                on_chain == proof.root,
                f"batch {proof.batch_id} has root 0x{on_chain.hex()}",
            )
        )
        anchored_at = contract.anchored_at(proof.root)
        when = datetime.fromtimestamp(anchored_at, UTC).isoformat() if anchored_at else "never"
        checks.append(Check("root anchored", anchored_at > 0, f"anchored at {when}"))
        if proof.transaction_hash is None:
            checks.append(Check("transaction", False, "the proof names no transaction"))
            return checks
        events = contract.events_in(proof.transaction_hash)
        matching = [e for e in events if e.batch_id == proof.batch_id and e.root == proof.root]
        checks.append(
            Check(
                "transaction",
                bool(matching),
                f"{proof.transaction_hash} emitted Anchored for this batch and root",
            )
        )
        if matching:
            event = matching[0]
            # The path alone does not pin the tree size; the anchored leaf count does.
            checks.append(
                Check(
                    "tree size",
                    event.leaf_count == proof.tree_size,
                    f"{event.leaf_count} leaves anchored, proof says {proof.tree_size}",
                )
            )
            depth = int(w3.eth.block_number) - event.block_number + 1
            checks.append(
                Check(
                    "confirmations",
                    depth >= min_confirmations,
                    f"{depth}, at least {min_confirmations} required (block {event.block_number})",
                )
            )
    return checks
