"""The EdgeDRNN accelerator in software: bit-exact integer delta-GRU, cycle model, threshold governor, backend."""

from .backend import DEFAULT_BUDGET_S, EdgeDRNNBackend
from .governor import ThresholdGovernor
from .model import DEFAULT_CLOCK_HZ, EdgeDRNNError, EdgeDRNNModel, RunResult

__all__ = [
    "DEFAULT_BUDGET_S",
    "DEFAULT_CLOCK_HZ",
    "EdgeDRNNBackend",
    "EdgeDRNNError",
    "EdgeDRNNModel",
    "RunResult",
    "ThresholdGovernor",
]
