"""A ticket's anchor proof as a self-contained document: the Merkle audit path from the
ticket's leaf to a batch root, and where that root was published on chain.

Anyone holding the document can check the path with nothing else, then ask any node of the
chain whether the contract recorded the root (``tollgate anchors verify-proof``).
"""

import hashlib
from dataclasses import dataclass
from typing import Any

from domain.merkle import HASH_SIZE, InclusionProof, verify_inclusion

TREE = "rfc6962-sha256"


def ticket_leaf(payload: str) -> bytes:
    """A ticket's leaf: SHA-256 of its signed QR payload, which its holder can recompute."""
    return hashlib.sha256(payload.encode("ascii")).digest()


@dataclass(frozen=True)
class AnchorProof:
    ticket_id: str
    leaf: bytes
    leaf_index: int
    tree_size: int
    siblings: tuple[bytes, ...]
    root: bytes
    batch_id: int
    chain_id: int
    contract_address: str
    transaction_hash: str | None
    block_number: int | None

    @property
    def inclusion(self) -> InclusionProof:
        return InclusionProof(
            leaf_index=self.leaf_index, tree_size=self.tree_size, siblings=self.siblings
        )

    def path_verifies(self) -> bool:
        return verify_inclusion(self.leaf, self.inclusion, self.root)

    def to_document(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "tree": TREE,
            "leaf": _hex(self.leaf),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "siblings": [_hex(s) for s in self.siblings],
            "root": _hex(self.root),
            "batch_id": self.batch_id,
            "chain_id": self.chain_id,
            "contract_address": self.contract_address,
            "transaction_hash": self.transaction_hash,
            "block_number": self.block_number,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "AnchorProof":
        """Reads what ``to_document`` (and the proof endpoint) wrote; ``ValueError`` names
        the first field that is missing or malformed."""
        if document.get("tree", TREE) != TREE:
            raise ValueError(f"tree: only {TREE} proofs are understood")
        try:
            return cls(
                ticket_id=str(_field(document, "ticket_id", str)),
                leaf=_hash(document, "leaf"),
                leaf_index=_field(document, "leaf_index", int),
                tree_size=_field(document, "tree_size", int),
                siblings=tuple(
                    _hash({"sibling": s}, "sibling") for s in _field(document, "siblings", list)
                ),
                root=_hash(document, "root"),
                batch_id=_field(document, "batch_id", int),
                chain_id=_field(document, "chain_id", int),
                contract_address=_field(document, "contract_address", str),
                transaction_hash=document.get("transaction_hash"),
                block_number=document.get("block_number"),
            )
        except KeyError as missing:
            raise ValueError(f"{missing.args[0]}: missing") from None


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def _hash(document: dict[str, Any], name: str) -> bytes:
    text = _field(document, name, str)
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ValueError(f"{name}: not hex") from None
    if len(value) != HASH_SIZE:
        raise ValueError(f"{name}: expected {HASH_SIZE} bytes, got {len(value)}")
    return value


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
