"""The import ladder of the architecture page: experiments → hil → firmware_bridge → controllers → envs, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LADDER = ("envs", "controllers", "firmware_bridge", "hil", "experiments")
ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", LADDER)
def test_no_upward_imports(package: str) -> None:
    above = set(LADDER[LADDER.index(package) + 1 :])
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & above)
        for p in (ROOT / package).rglob("*.py")
        if _imports(p) & above
    }
    assert not offenders, f"{package} imports packages above it on the ladder: {offenders}"
