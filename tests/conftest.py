"""Shared pytest fixtures: tiny controller checkpoints, and the RTL conformance vectors."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:  # torch loads when a test first builds a checkpoint, not for every test module
    from controllers.checkpoint import CheckpointMeta
    from controllers.deltagru import DeltaGRU

# z-score (mean, std) of gait-like raw features per feature set: the default normalisation of a test checkpoint.
GAIT_NORMS = {
    "ampro": ([0.6, 0.0, 0.0, 0.0, 0.0], [0.5, 0.1, 1.0, 0.1, 1.0]),
    "sensors": ([0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 400.0], [0.4, 3.0, 0.1, 1.0, 0.3, 1.0, 300.0]),
    "ampro_plus": ([0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 400.0, 0.5], [0.5, 0.1, 1.0, 0.1, 1.0, 0.3, 1.0, 300.0, 0.3]),
}


class CheckpointFactory:
    """Tiny random-weight delta-GRU checkpoints, for tests where training is not under test.

    ``factory(name, ...)`` writes ``tmp_path / name`` (+ ``.json``) and returns its path; :meth:`model` and
    :meth:`meta` build the two halves in memory, :meth:`norm` is the default input normalisation (to make features
    that look like the ones the network expects). Torques: network output × (40, 20) + (10, 5) N·m by default.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def norm(feature_set: str = "ampro") -> tuple[np.ndarray, np.ndarray]:
        """The default input normalisation of ``feature_set``: float32 (mean, std)."""
        mean, std = GAIT_NORMS[feature_set]
        return np.asarray(mean, np.float32), np.asarray(std, np.float32)

    @staticmethod
    def model(
        feature_set: str = "ampro", hidden: int = 16, layers: int = 2, *, seed: int = 0, gain: float = 2.0, **kwargs
    ) -> DeltaGRU:
        """A seeded DeltaGRU (2 outputs) with its weight matrices scaled by ``gain``: livelier dynamics than the
        default init. ``kwargs`` go to :class:`DeltaGRU` (theta_x, theta_h, qat, bhn_zero)."""
        import torch

        from controllers.deltagru import DeltaGRU
        from controllers.features import feature_size

        torch.manual_seed(seed)
        m = DeltaGRU(feature_size(feature_set), hidden, layers, 2, **kwargs)
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.startswith("weight"):
                    p.mul_(gain)
        return m

    def meta(
        self,
        model: DeltaGRU,
        feature_set: str = "ampro",
        *,
        norm: tuple[Sequence[float], Sequence[float]] | None = None,
        target_scale: Sequence[float] = (40.0, 20.0),
        target_offset: Sequence[float] = (10.0, 5.0),
    ) -> CheckpointMeta:
        """Checkpoint metadata for ``model``; ``norm`` (mean, std) defaults to :meth:`norm` of the feature set."""
        from controllers.checkpoint import CheckpointMeta
        from controllers.features import Normalizer

        mean, std = self.norm(feature_set) if norm is None else norm
        return CheckpointMeta(
            model=model.config(),
            feature_set=feature_set,
            input_norm=Normalizer(np.asarray(mean, np.float32), np.asarray(std, np.float32)),
            target_scale=np.asarray(target_scale, np.float32),
            target_offset=np.asarray(target_offset, np.float32),
        )

    def __call__(
        self,
        name: str | Path = "c.pt",
        *,
        feature_set: str = "ampro",
        hidden: int = 16,
        layers: int = 2,
        theta_x: float = 0.0,
        theta_h: float = 0.0,
        qat: bool = False,
        seed: int = 0,
        gain: float = 2.0,
        norm: tuple[Sequence[float], Sequence[float]] | None = None,
        target_scale: Sequence[float] = (40.0, 20.0),
        target_offset: Sequence[float] = (10.0, 5.0),
    ) -> Path:
        """Write ``directory / name`` (+ ``.json``): a :meth:`model` with these sizes, thresholds and QAT flag, and
        its :meth:`meta`."""
        from controllers.checkpoint import save_checkpoint

        model = self.model(feature_set, hidden, layers, seed=seed, gain=gain, theta_x=theta_x, theta_h=theta_h, qat=qat)
        meta = self.meta(model, feature_set, norm=norm, target_scale=target_scale, target_offset=target_offset)
        return save_checkpoint(self.directory / name, model, meta)

    def damper(self, name: str | Path = "damper.pt", *, theta: float = 0.02, scale: float = 10.0) -> Path:
        """A 2L-16H delta-GRU on the ``sensors`` features built by hand to act as a viscous damper on both joints
        (torque ≈ −c · joint velocity, through a low-pass gate): unlike a random network, the walker goes on walking
        with it (seed 0 of the default evaluation walks 60 s), so closed-loop tests can run for tens of seconds.
        The other 14 units keep random weights (they fire columns and cost cycles, but the output ignores them)."""
        import torch

        from controllers.checkpoint import save_checkpoint

        H = 16
        model = self.model("sensors", hidden=H, layers=2, seed=1, gain=0.5, theta_x=theta, theta_h=theta)
        with torch.no_grad():
            for layer in range(2):
                w_ih, w_hh = getattr(model, f"weight_ih_l{layer}"), getattr(model, f"weight_hh_l{layer}")
                b_ih, b_hh = getattr(model, f"bias_ih_l{layer}"), getattr(model, f"bias_hh_l{layer}")
                # unit 0 follows the knee velocity (sensor 1), unit 1 the ankle velocity (sensor 3)
                for unit, source in ((0, 1 if layer == 0 else 0), (1, 3 if layer == 0 else 1)):
                    for gate in range(3):
                        w_ih[gate * H + unit].zero_()
                        w_hh[gate * H + unit].zero_()
                        b_ih[gate * H + unit] = 0.0
                        b_hh[gate * H + unit] = 0.0
                    w_ih[2 * H + unit, source] = 0.95  # n = tanh(0.95 · input)
                    b_ih[H + unit] = -1.0  # z ≈ 0.27: a first-order low-pass
            model.fc.weight.zero_()
            model.fc.bias.zero_()
            model.fc.weight[0, 0] = -1.0
            model.fc.weight[1, 1] = -1.0
        mean = np.zeros(7, np.float32)
        std = np.array([1, 3, 1, 3, 1, 3, 1000], np.float32)
        meta = self.meta(model, "sensors", norm=(mean, std), target_scale=(scale, scale), target_offset=(0.0, 0.0))
        return save_checkpoint(self.directory / name, model, meta)


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> CheckpointFactory:
    """Factory of tiny checkpoints in ``tmp_path``: ``make_checkpoint("c.pt", hidden=16, theta_x=...) -> Path``."""
    return CheckpointFactory(tmp_path)


@pytest.fixture(scope="module")
def make_module_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> CheckpointFactory:
    """The same factory in a directory shared by one test module: for module-scoped fixtures (a sweep or runs that
    several tests read)."""
    return CheckpointFactory(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def conformance_dir() -> Path:
    """The shared conformance-vector folder named by ``LEGLOOP_CONFORMANCE_DIR``.

    Skips when the variable is unset, and when it names a folder that does not exist: the Makefile always sets it
    (to ../shared/conformance), and a clone without ../shared beside it has no vectors to test against.
    """
    value = os.environ.get("LEGLOOP_CONFORMANCE_DIR")
    if not value:
        pytest.skip(
            "LEGLOOP_CONFORMANCE_DIR is not set: conformance vectors come from ../shared/conformance (set by .ci/run)"
        )
    path = Path(value)
    if not path.is_dir():
        pytest.skip(
            f"LEGLOOP_CONFORMANCE_DIR={value} does not exist: conformance vectors come from ../shared/conformance "
            "(set by .ci/run)"
        )
    return path


@pytest.fixture
def edgedrnn_tb(conformance_dir: Path) -> Path:
    """The authors' EdgeDRNN RTL test-bench vectors (``<conformance dir>/edgedrnn``); skips where absent."""
    d = conformance_dir / "edgedrnn"
    if not d.is_dir():
        pytest.skip(f"{d} does not exist: the EdgeDRNN vectors come from ../shared/conformance/edgedrnn")
    return d


def _benchmark_script(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module: benchmarks/ is a folder of scripts, not an installed package."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def rl_vs_pd() -> ModuleType:
    """benchmarks/rl_vs_pd.py as a module."""
    return _benchmark_script("rl_vs_pd")


@pytest.fixture(scope="session")
def pick_student() -> ModuleType:
    """benchmarks/pick_student.py as a module."""
    return _benchmark_script("pick_student")
