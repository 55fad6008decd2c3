"""The committed contract artifacts are what their sources compile to."""

import hashlib

import pytest

from devstack.contracts import CONTRACTS, REPO_ROOT, compile_contract, source_path
from integrations.chain import load_artifact

RECOMPILE = "run `.venv/bin/python -m devstack.contracts` and commit contracts/build"


@pytest.mark.parametrize("name", CONTRACTS)
def test_committed_artifact_matches_source(name: str) -> None:
    committed = load_artifact(name)
    source = (REPO_ROOT / source_path(name)).read_bytes()
    assert committed["source_sha256"] == hashlib.sha256(source).hexdigest(), RECOMPILE

    compiled = compile_contract(name)
    assert compiled["compiler"] == committed["compiler"]
    assert compiled["abi"] == committed["abi"], RECOMPILE
    assert compiled["bytecode"] == committed["bytecode"], RECOMPILE
