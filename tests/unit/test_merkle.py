"""RFC 6962 Merkle trees: ``MerkleTree`` against a reference written straight from RFC 6962
§2.1, published test vectors, and tampering of every part of a proof."""

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.merkle import (
    HASH_SIZE,
    InclusionProof,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_proof,
    split_path,
    verify_inclusion,
)

MAX_LEAVES = 70  # covers several levels with odd widths, promotions included


def _split(n: int) -> int:
    """RFC 6962's k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def reference_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) as RFC 6962 §2.1 defines it (n >= 1)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) as RFC 6962 §2.1.1 defines it."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_mth(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_mth(leaves[:k])]


def reference_shape(m: int, n: int) -> list[bool]:
    """Whether leaf m of a tree of n is, at each step of PATH(m, D[n]), the right child."""
    if n == 1:
        return []
    k = _split(n)
    return [*reference_shape(m, k), False] if m < k else [*reference_shape(m - k, n - k), True]


leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=MAX_LEAVES)


@st.composite
def trees_and_indices(draw: st.DrawFn, min_size: int = 1) -> tuple[list[bytes], int]:
    # Distinct leaves, as tickets are: with [x, x] the proof of leaf 0 is also one of leaf 1,
    # rightly, which the tampering tests would count as a changed index passing.
    leaves = draw(
        st.lists(
            st.binary(max_size=40), min_size=max(min_size, 1), max_size=MAX_LEAVES, unique=True
        )
    )
    return leaves, draw(st.integers(0, len(leaves) - 1))


def _proof_and_root(leaves: list[bytes], index: int) -> tuple[InclusionProof, bytes]:
    tree = MerkleTree(leaves)
    return tree.proof(index), tree.root


# --- agreement with RFC 6962 --------------------------------------------------------------


@settings(max_examples=150)
@given(leaf_lists)
def test_root_and_every_path_match_the_rfc_6962_reference(leaves: list[bytes]) -> None:
    tree = MerkleTree(leaves)
    assert tree.size == len(leaves)
    assert tree.root == reference_mth(leaves)
    paths = tree.all_paths()
    for index in range(len(leaves)):
        proof = tree.proof(index)
        assert proof == InclusionProof(index, len(leaves), tuple(reference_path(index, leaves)))
        assert paths[index] == tree.path_bytes(index) == b"".join(proof.siblings)
        assert split_path(paths[index]) == proof.siblings


@pytest.mark.parametrize("size", range(1, MAX_LEAVES + 1))
def test_every_proof_of_every_tree_size_verifies(size: int) -> None:
    leaves = [index.to_bytes(4, "big") for index in range(size)]
    tree = MerkleTree(leaves)
    for index, path in enumerate(tree.all_paths()):
        proof = InclusionProof(index, size, split_path(path))
        assert root_from_proof(leaves[index], proof) == tree.root
        assert verify_inclusion(leaves[index], proof, tree.root)


# Certificate Transparency's published vectors (also in Trillian's and RFC 9162 verifiers'
# test suites): external known answers, not derived from this code.
CT_LEAVES = [
    bytes.fromhex(leaf)
    for leaf in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PROOFS = [  # (leaf index, tree size, audit path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.mark.parametrize("size", range(1, len(CT_LEAVES) + 1))
def test_roots_match_the_certificate_transparency_vectors(size: int) -> None:
    assert MerkleTree(CT_LEAVES[:size]).root.hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_PROOFS)
def test_proofs_match_the_certificate_transparency_vectors(
    index: int, size: int, path: list[str]
) -> None:
    proof = MerkleTree(CT_LEAVES[:size]).proof(index)
    assert [sibling.hex() for sibling in proof.siblings] == path
    assert verify_inclusion(CT_LEAVES[index], proof, bytes.fromhex(CT_ROOTS[size - 1]))


# --- fixed cases --------------------------------------------------------------------------


def test_an_empty_tree_is_refused() -> None:
    with pytest.raises(ValueError):
        MerkleTree([])


def test_a_one_leaf_tree_is_its_leaf_hash_with_an_empty_path() -> None:
    tree = MerkleTree([b"ticket"])
    assert tree.size == 1
    assert tree.root == hashlib.sha256(b"\x00ticket").digest()
    assert tree.proof(0) == InclusionProof(0, 1, ())
    assert tree.all_paths() == [b""]
    assert verify_inclusion(b"ticket", tree.proof(0), tree.root)


def test_three_leaves_promote_the_last_node_instead_of_duplicating_it() -> None:
    a, b, c = (hashlib.sha256(b"\x00" + data).digest() for data in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    tree = MerkleTree([b"a", b"b", b"c"])
    assert tree.root == hashlib.sha256(b"\x01" + ab + c).digest()
    assert [tree.proof(index).siblings for index in range(3)] == [(b, c), (a, c), (ab,)]
    # Duplicating c (CVE-2012-2459) would make [a, b, c] and [a, b, c, c] indistinguishable.
    assert tree.root != MerkleTree([b"a", b"b", b"c", b"c"]).root


def test_proof_of_an_index_outside_the_tree_raises() -> None:
    tree = MerkleTree([b"a", b"b", b"c"])
    for index in (-1, 3):
        with pytest.raises(IndexError):
            tree.proof(index)


def test_split_path_refuses_a_partial_hash() -> None:
    assert split_path(b"") == ()
    with pytest.raises(ValueError):
        split_path(bytes(HASH_SIZE + 1))


def test_malformed_proofs_have_no_root() -> None:
    tree = MerkleTree([b"a", b"b", b"c"])
    good = tree.proof(2)
    for bad in (
        replace(good, tree_size=0),
        replace(good, leaf_index=-1),
        replace(good, leaf_index=3),
        replace(good, siblings=(good.siblings[0][:-1],)),
        replace(good, siblings=(good.siblings[0] + b"\x00",)),
        replace(good, siblings=()),
        replace(good, siblings=good.siblings * 2),
    ):
        assert root_from_proof(b"c", bad) is None
        assert not verify_inclusion(b"c", bad, tree.root)


# --- tampering ----------------------------------------------------------------------------


@given(trees_and_indices(), st.binary(max_size=40))
def test_another_leaf_does_not_verify(case: tuple[list[bytes], int], other: bytes) -> None:
    leaves, index = case
    proof, root = _proof_and_root(leaves, index)
    assert verify_inclusion(other, proof, root) == (other == leaves[index])


@given(trees_and_indices(min_size=2), st.data())
def test_any_changed_byte_of_any_sibling_fails(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = case
    proof, root = _proof_and_root(leaves, index)
    which = data.draw(st.integers(0, len(proof.siblings) - 1))
    offset = data.draw(st.integers(0, HASH_SIZE - 1))
    flip = data.draw(st.integers(1, 255))
    sibling = bytearray(proof.siblings[which])
    sibling[offset] ^= flip
    siblings = list(proof.siblings)
    siblings[which] = bytes(sibling)
    assert not verify_inclusion(leaves[index], replace(proof, siblings=tuple(siblings)), root)


@given(trees_and_indices(min_size=2), st.data())
def test_another_index_fails(case: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, index = case
    proof, root = _proof_and_root(leaves, index)
    other = data.draw(st.integers(-2, len(leaves) + 2).filter(lambda i: i != index))
    assert not verify_inclusion(leaves[index], replace(proof, leaf_index=other), root)


@given(trees_and_indices(), st.integers(0, 2 * MAX_LEAVES))
def test_another_tree_size_fails_unless_it_gives_the_leaf_the_same_path_shape(
    case: tuple[list[bytes], int], size: int
) -> None:
    """A path fixes its hashes' order, not the tree size itself: leaf 0 of a tree of 3 and of
    a tree of 4 both take two left turns. So a changed size verifies exactly when it implies
    the same sequence of turns (which also means the same number of siblings), and no
    other leaf's hash is involved; binding the size is the anchored ``leafCount``'s job."""
    leaves, index = case
    proof, root = _proof_and_root(leaves, index)
    same_shape = index < size and reference_shape(index, size) == reference_shape(
        index, len(leaves)
    )
    assert verify_inclusion(leaves[index], replace(proof, tree_size=size), root) == same_shape


@given(trees_and_indices(), st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE))
def test_another_root_fails(case: tuple[list[bytes], int], other: bytes) -> None:
    leaves, index = case
    proof, root = _proof_and_root(leaves, index)
    assert verify_inclusion(leaves[index], proof, other) == (other == root)


@given(trees_and_indices(), st.data())
def test_an_added_sibling_makes_the_proof_malformed(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = case
    proof, root = _proof_and_root(leaves, index)
    # Also try repeating a genuine sibling or the root: the most plausible forgeries.
    extra = data.draw(
        st.sampled_from([*proof.siblings, root]) | st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE)
    )
    at = data.draw(st.integers(0, len(proof.siblings)))
    siblings = (*proof.siblings[:at], extra, *proof.siblings[at:])
    assert root_from_proof(leaves[index], replace(proof, siblings=siblings)) is None


@given(trees_and_indices(min_size=2), st.data())
def test_a_removed_sibling_makes_the_proof_malformed(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = case
    proof = MerkleTree(leaves).proof(index)
    at = data.draw(st.integers(0, len(proof.siblings) - 1))
    siblings = proof.siblings[:at] + proof.siblings[at + 1 :]
    assert root_from_proof(leaves[index], replace(proof, siblings=siblings)) is None


# --- second preimages ---------------------------------------------------------------------


@given(st.binary(max_size=HASH_SIZE * 2), st.binary(max_size=HASH_SIZE * 2))
def test_a_leaf_hash_is_never_a_node_hash(left: bytes, right: bytes) -> None:
    assert leaf_hash(left + right) != node_hash(left, right)


def test_the_children_of_a_two_leaf_root_are_not_a_leaf_of_it() -> None:
    tree = MerkleTree([b"a", b"b"])
    forged_leaf = leaf_hash(b"a") + leaf_hash(b"b")
    assert not verify_inclusion(forged_leaf, InclusionProof(0, 1, ()), tree.root)
    assert MerkleTree([forged_leaf]).root != tree.root


@given(leaf_lists.filter(lambda leaves: len(leaves) >= 2))
def test_an_inner_node_cannot_be_presented_as_a_leaf(leaves: list[bytes]) -> None:
    """The forgery is well formed: the inner node over leaves 0 and 1 is leaf 0 of the tree
    one level up, whose path is the rest of leaf 0's path. Only the leaf/node prefixes stop
    its children's concatenation from verifying as that leaf."""
    tree = MerkleTree(leaves)
    genuine = tree.proof(0)
    upper_size = (len(leaves) + 1) // 2
    assert reference_shape(0, upper_size) == reference_shape(0, len(leaves))[1:]
    forged = InclusionProof(0, upper_size, genuine.siblings[1:])
    children = leaf_hash(leaves[0]) + genuine.siblings[0]
    assert not verify_inclusion(children, forged, tree.root)
