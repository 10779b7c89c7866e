"""Progress bars for long work (collection, training stages, RL training, sweeps): one tqdm bar on stderr.

On a terminal the bar redraws ~10 times a second, as tqdm does. Into a file or a pipe (``legloop train … 2> log``,
CI) every redraw is kept, so there it redraws at most every ``LOG_INTERVAL_S`` seconds: a 4-minute distillation
wrote 180 kB of bars to its log before, a handful of lines now, and the log still shows the work moving.
"""

from __future__ import annotations

import sys
from typing import Any

LOG_INTERVAL_S = 30.0


def progress_bar(
    total: int | None, desc: str, unit: str, *, enabled: bool = True, interval_s: float = 0.1, **kwargs: Any
) -> Any:
    """A ``tqdm`` bar on stderr, disabled when ``enabled`` is false; ``kwargs`` go to tqdm.

    It redraws at most every ``interval_s`` seconds on a terminal, every ``LOG_INTERVAL_S`` elsewhere."""
    from tqdm import tqdm  # here, not at import: `legloop --help` does not pay for it

    tty = getattr(sys.stderr, "isatty", lambda: False)()
    kwargs["mininterval"] = interval_s if tty else max(interval_s, LOG_INTERVAL_S)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, **kwargs)
