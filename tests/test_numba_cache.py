"""The compiled-kernel cache cannot go stale: an edit to a kernel that another cached kernel calls takes effect.

Stock ``numba.njit(cache=True)`` checks only the caller's own file: with f in a.py and g(x) = 2·f(x) in b.py, editing
f from x + 1 to x + 2 leaves g(1) == 4 in the next process (measured with numba 0.68). ``envs.jit.kernel`` keys the
cache by every project module a kernel can reach, so the next process recompiles and gets 6. Each run is a fresh
Python process on a temporary copy, so the on-disk cache is what is under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, path: Path) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(path), str(ROOT)]), NUMBA_CACHE_DIR="")
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=path)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def _cache_files(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("__pycache__/*.nb[ic]")}


def test_an_edit_to_a_called_kernel_recompiles_its_caller(tmp_path: Path) -> None:
    pkg = tmp_path / "cachetoy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from envs.jit import kernel\n\n\n@kernel\ndef f(x):\n    return x + 1\n")
    (pkg / "b.py").write_text(
        "from cachetoy.a import f\nfrom envs.jit import kernel\n\n\n@kernel\ndef g(x):\n    return f(x) * 2\n"
    )
    code = "from cachetoy.b import g; print(g(1))"
    assert _run(code, tmp_path) == "4"
    first = _cache_files(pkg)
    assert any(n.startswith("b.g-") and n.endswith(".nbc") for n in first), f"g was not cached: {sorted(first)}"
    assert _run(code, tmp_path) == "4"
    assert _cache_files(pkg) == first  # unchanged sources: the cache was used, nothing rewritten
    (pkg / "a.py").write_text("from envs.jit import kernel\n\n\n@kernel\ndef f(x):\n    return x + 2\n")
    assert _run(code, tmp_path) == "6"  # stock numba gives 4 here (g's cached machine code inlines the old f)


@pytest.mark.slow
def test_an_edit_to_the_gru_kernel_reaches_the_fused_cpu_step(tmp_path: Path) -> None:
    """The project's own pair: hil.cpu_backend.cpu_step calls controllers.gru_kernel.kernel_step (→ _linear)."""
    for pkg in ("envs", "controllers", "hil"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    code = """
import numpy as np
from controllers.gru_kernel import DeltaGRUKernel
from hil.cpu_backend import cpu_step
rng = np.random.default_rng(0)
H, I = 8, 3
layers = [(rng.standard_normal((3 * H, I)).astype(np.float32), rng.standard_normal((3 * H, H)).astype(np.float32),
           np.zeros(4 * H, np.float32))]
k = DeltaGRUKernel(layers, rng.standard_normal((2, H)).astype(np.float32), np.zeros(2, np.float32), 0.0, 0.0)
io = np.zeros((3, 2))
io[0] = 1.0
norm = np.stack([np.zeros(I, np.float32), np.ones(I, np.float32)])
cpu_step(np.ones(I), norm, np.zeros(I, np.float32), *k.buffers(), io)
print(round(float(io[2, 0]), 3))
"""
    before = float(_run(code, tmp_path))
    assert float(_run(code, tmp_path)) == before
    src = tmp_path / "controllers" / "gru_kernel.py"
    text = src.read_text()
    marker = "out[o] = b[o] + ("
    assert marker in text, "the output layer's line changed: update this test's edit"
    src.write_text(text.replace(marker, "out[o] = b[o] + 1000.0 + ("))
    assert float(_run(code, tmp_path)) == pytest.approx(before + 1000.0, abs=1e-3)


KERNEL_MODULES = (
    "envs.plant_kernel",
    "hil.edgedrnn.predictive",
    "hil.edgedrnn.kernel",
    "hil.cpu_backend",
    "controllers.gru_kernel",
    "controllers.pd",
)


def _keys(prefix_imports: str) -> str:
    code = (
        f"{prefix_imports}\nimport importlib\nfrom envs.jit import dependency_digest\n"
        f"for m in {KERNEL_MODULES!r}:\n    importlib.import_module(m)\n    print(m, dependency_digest(m))\n"
    )
    return _run(code, ROOT)


def test_a_kernels_cache_key_does_not_depend_on_what_else_the_process_imported() -> None:
    """A board process (few imports) and a test worker or the CLI (many) must find each other's cached kernels: a key
    that followed whatever submodules happened to be imported made them recompile (~50 s) and overwrite each other."""
    alone = _keys("")
    everything = _keys("import experiments.cli, experiments.train, hil.board_emulator, hil.learned, hil.rollout")
    assert len(alone.splitlines()) == len(KERNEL_MODULES)
    assert alone == everything
