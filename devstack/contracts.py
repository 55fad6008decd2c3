"""Compiles the Solidity contracts with solcjs into the artifacts committed under contracts/build.

Run ``python -m devstack.contracts`` after editing a contract; a unit test fails while a
committed artifact differs from what its source compiles to.
"""

import hashlib
import json
import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SOLCJS = REPO_ROOT / "node_modules" / ".bin" / "solcjs"
BUILD_DIR = REPO_ROOT / "contracts" / "build"
CONTRACTS = ("Anchor", "TestUSD")
OPTIMIZER_RUNS = 200
SOLC_FLAGS = ("--bin", "--abi", "--optimize", "--optimize-runs", str(OPTIMIZER_RUNS))


def source_path(name: str) -> str:
    # Relative to the repo root, because solc hashes the path it was given into the bytecode's
    # metadata: the same path from any checkout yields the same bytecode.
    return f"contracts/{name}.sol"


def compiler_version() -> str:
    return _solcjs("--version").strip()


def compile_contract(name: str) -> dict[str, Any]:
    """Compiles ``contracts/{name}.sol`` and returns its artifact (nothing is written)."""
    source = source_path(name)
    with tempfile.TemporaryDirectory(prefix="solcjs-") as out:
        _solcjs(*SOLC_FLAGS, "--output-dir", out, source)
        stem = source.replace("/", "_").replace(".", "_") + f"_{name}"
        abi = json.loads((Path(out) / f"{stem}.abi").read_text())
        bytecode = (Path(out) / f"{stem}.bin").read_text().strip()
    return {
        "contractName": name,
        "source": source,
        "source_sha256": hashlib.sha256((REPO_ROOT / source).read_bytes()).hexdigest(),
        "compiler": compiler_version(),
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "abi": abi,
        "bytecode": "0x" + bytecode,
    }


def write_artifact(artifact: dict[str, Any], build_dir: Path = BUILD_DIR) -> Path:
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"{artifact['contractName']}.json"
    path.write_text(json.dumps(artifact, indent=2) + "\n")
    return path


def _solcjs(*args: str) -> str:
    result = subprocess.run(
        [str(SOLCJS), *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"solcjs {' '.join(args)} failed:\n{result.stderr}")
    if result.stderr.strip():
        log.warning("solcjs: %s", result.stderr.strip())
    return result.stdout


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in CONTRACTS:
        path = write_artifact(compile_contract(name))
        log.info("wrote %s", path.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
