"""Where the stack's executables are: this venv's scripts, then node_modules, then PATH."""

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def find(name: str) -> str:
    for candidate in (Path(sys.executable).parent / name, REPO / "node_modules" / ".bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `make bootstrap`")
    return found
