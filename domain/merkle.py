"""RFC 6962 Merkle trees over SHA-256: roots to anchor on chain, inclusion proofs per leaf.

Why this construction and not a home-made one:

- Leaves and inner nodes are hashed with different one-byte prefixes (``0x00`` / ``0x01``),
  so a leaf can never be passed off as an inner node: without the prefixes, the 64-byte
  concatenation of two child hashes is a "leaf" whose hash is the parent, and a proof for
  a leaf that was never issued can be forged (second-preimage attack).
- An odd node at the end of a level is promoted unchanged, never paired with a copy of
  itself. Duplicating it (Bitcoin's scheme) gives ``[a, b, c]`` and ``[a, b, c, c]`` the
  same root, the ambiguity behind CVE-2012-2459. Promotion builds exactly the tree of
  RFC 6962 §2.1 (split at the largest power of two below n), so any RFC 6962 / RFC 9162
  verifier, e.g. a third party's, checks our proofs.
- ``root_from_proof`` is the RFC 9162 §2.1.3.2 algorithm: it needs only the leaf data, the
  proof (index, tree size, audit path) and the root, not this module's tree.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    # RFC 6962 audit path: the sibling hashes from the leaf's level up to the root's children.
    siblings: tuple[bytes, ...]


class MerkleTree:
    """The tree over ``leaves`` (raw leaf data, hashed here), every level kept for proofs."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        sha256 = hashlib.sha256
        level = [sha256(_LEAF_PREFIX + data).digest() for data in leaves]
        self._levels = [level]
        while len(level) > 1:
            paired = len(level) & ~1
            parents = [
                sha256(_NODE_PREFIX + left + right).digest()
                for left, right in zip(level[0:paired:2], level[1:paired:2], strict=True)
            ]
            if paired < len(level):
                parents.append(level[-1])  # promoted, not duplicated
            level = parents
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def proof(self, index: int) -> InclusionProof:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} is outside a tree of {self.size} leaves")
        siblings = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            # No sibling means the node was promoted: that level adds nothing to the path.
            if sibling < len(level):
                siblings.append(level[sibling])
            position >>= 1
        return InclusionProof(leaf_index=index, tree_size=self.size, siblings=tuple(siblings))

    def path_bytes(self, index: int) -> bytes:
        return b"".join(self.proof(index).siblings)

    def all_paths(self) -> list[bytes]:
        """``path_bytes`` of every leaf, in leaf order.

        Built top-down: a node's path is its own sibling followed by its parent's path, so
        each level costs one concatenation per node instead of one walk per leaf and level.
        """
        paths = [b""]
        for level in reversed(self._levels[:-1]):
            paths = [
                sibling + paths[position >> 1]
                for position, sibling in enumerate(_siblings_of(level))
            ]
        return paths


def _siblings_of(level: list[bytes]) -> list[bytes]:
    """Each node's sibling on ``level``; ``b""`` for a promoted last node, which has none."""
    siblings = [b""] * len(level)
    paired = len(level) & ~1
    siblings[0:paired:2] = level[1:paired:2]
    siblings[1:paired:2] = level[0:paired:2]
    return siblings


def split_path(path: bytes) -> tuple[bytes, ...]:
    """The sibling hashes of a stored ``path_bytes``."""
    if len(path) % HASH_SIZE:
        raise ValueError(f"a Merkle path is a multiple of {HASH_SIZE} bytes, not {len(path)}")
    return tuple(path[start : start + HASH_SIZE] for start in range(0, len(path), HASH_SIZE))


def root_from_proof(leaf_data: bytes, proof: InclusionProof) -> bytes | None:
    """The root that ``proof`` makes of ``leaf_data`` (RFC 9162 §2.1.3.2); ``None`` if the
    proof is malformed: index outside the tree, or a path of the wrong length or shape."""
    if not 0 <= proof.leaf_index < proof.tree_size:
        return None
    # fn walks the leaf's position up the tree, sn the last node's: while they are equal the
    # node is the rightmost one and, on levels where it has no sibling, is promoted.
    fn, sn = proof.leaf_index, proof.tree_size - 1
    result = leaf_hash(leaf_data)
    for sibling in proof.siblings:
        if sn == 0 or len(sibling) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return result if sn == 0 else None


def verify_inclusion(leaf_data: bytes, proof: InclusionProof, root: bytes) -> bool:
    return root_from_proof(leaf_data, proof) == root
