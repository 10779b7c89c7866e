"""No module reads another module's underscore attributes (the companion of the import-ladder test).

A module may use ``self._x`` / ``cls._x`` and any underscore name it defines itself (including ``other._x`` on
another instance of its own classes). Reading ``obj._x`` where ``_x`` is defined only in some other module, or
``from project.module import _x``, couples two modules through an internal that the owner may change freely: give
the owner a public accessor instead. Dunder names and the namedtuple API (``_replace``, ``_asdict``, ``_fields``,
``_make``) are public by convention.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "controllers", "firmware_bridge", "hil", "experiments", "benchmarks")
PUBLIC_BY_CONVENTION = {"_replace", "_asdict", "_fields", "_make"}
# Third-party private API used on purpose, in one place each, with the reason in the module.
ALLOWED = {
    ("envs/jit.py", "_locator_classes"),  # numba's cache-locator registry (see envs.jit's docstring)
    ("envs/jit.py", "_CacheImpl"),
    ("envs/jit.py", "_CacheLocator"),
    ("experiments/cli.py", "_SubParsersAction"),  # argparse has no public name for the sub-parsers action
}


def _defined_names(tree: ast.AST) -> set[str]:
    """Underscore names a module defines: functions, classes, module and class variables, ``self._x = …``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_"):
            names.add(node.value)  # __slots__ entries, getattr(obj, "_x") on its own attributes
    return {n for n in names if n.startswith("_")}


def _offences(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(), filename=rel)
    own = _defined_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            value = node.value
            receiver = value.id if isinstance(value, ast.Name) else None
            if receiver in ("self", "cls"):
                continue
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{rel}:{node.lineno} imports {alias.name} from {node.module}")
            continue
        else:
            continue
        if not name.startswith("_") or name.startswith("__") or name in PUBLIC_BY_CONVENTION:
            continue
        if name in own or (rel, name) in ALLOWED:
            continue
        found.append(f"{rel}:{node.lineno} reads .{name}")
    return found


def test_no_module_reads_another_modules_private_attributes() -> None:
    offences = [o for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) for o in _offences(p)]
    assert not offences, "private attributes read across modules:\n" + "\n".join(offences)


def test_the_checker_finds_what_it_should(tmp_path: Path) -> None:
    """The rule itself: a read of a foreign underscore attribute is reported, own ones are not."""
    bad = tmp_path / "benchmarks" / "probe.py"
    bad.parent.mkdir()
    bad.write_text(
        "from hil.deadline import DeadlineMonitor\n\n"
        "class A:\n    def __init__(self):\n        self._mine = 1\n\n"
        "def f(m: DeadlineMonitor, a: A):\n    return m._latency, a._mine\n"
    )
    assert _offences(bad, tmp_path) == ["benchmarks/probe.py:8 reads ._latency"]
