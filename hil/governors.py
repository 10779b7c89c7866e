"""Names of the EdgeDRNN threshold governors, as options, sweeps and results spell them (no model imported here).

=====================  ==========================================================================================
name                   governor
=====================  ==========================================================================================
``reactive``           :class:`hil.edgedrnn.governor.ThresholdGovernor`: raises Θ after a step that came near the
                       budget, lowers it slowly (what ``--governor`` / ``governor=True`` has always meant)
``predictive``         :class:`hil.edgedrnn.predictive.PredictiveGovernor`, ``bound="estimate"``: prices the coming
                       step with the cycle model and writes the smallest Θ that fits (no guarantee)
``predictive-worst``   the same with every column that can fire counted as fired: never late when a Θ fits
``predictive-oracle``  the same priced by trial steps on a copy of the whole model state: exact, but no host in front
                       of a board knows that state — the ceiling of pricing, for comparison
``predictive-split``   a host that runs the step one layer at a time, reading each layer's h back before the next:
                       every layer priced exactly, a threshold pair per layer; never late when a Θ fits
=====================  ==========================================================================================
"""

from __future__ import annotations

GOVERNORS = ("reactive", "predictive", "predictive-worst", "predictive-oracle", "predictive-split")
# Governors a board runs itself (protocol 1.1 SET_GOVERNOR, hil.board_backend): name → the request's policy.
BOARD_GOVERNORS = {"predictive-split": "split", "predictive-worst": "worst"}


def governor_name(governor: bool | str | None) -> str | None:
    """Normalise a governor option: False / None / '' / 'none' → None, True → 'reactive', a name → itself.

    Raises ``ValueError`` for anything else, naming the expected values.
    """
    if governor is None or governor is False or governor in ("", "none"):
        return None
    if governor is True:
        return "reactive"
    if not isinstance(governor, str) or governor not in GOVERNORS:
        raise ValueError(f"unknown governor {governor!r}; expected one of {', '.join(GOVERNORS)} (or none)")
    return governor


def check_board_governor(governor: str | None) -> str | None:
    """The SET_GOVERNOR policy of a (normalised) governor name for a board, None for none; ``ValueError`` naming the
    ones a board runs for any governor that runs in process only."""
    if governor is None:
        return None
    if governor not in BOARD_GOVERNORS:
        raise ValueError(
            f"governor {governor!r} runs in process only (--controller edgedrnn); a board governs its own "
            f"thresholds with predictive-worst (the step in one accelerator invocation) or predictive-split (an "
            f"accelerator that stops between layers)"
        )
    return BOARD_GOVERNORS[governor]
