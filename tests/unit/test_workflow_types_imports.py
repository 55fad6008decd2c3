"""``workflows/types.py`` is loaded inside the workflow sandbox by any worker not using the
production runner (and by the replayer), so it may import only the standard library's data
types and pydantic: a domain module pulling in ``secrets`` made every workflow task fail
there, and queries time out."""

import ast
from pathlib import Path

ALLOWED = {"datetime", "uuid", "typing", "enum", "decimal", "pydantic"}


def test_workflow_types_import_nothing_the_sandbox_would_refuse() -> None:
    source = (Path(__file__).parents[2] / "workflows" / "types.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED, f"workflows/types.py imports {sorted(imported - ALLOWED)}"
