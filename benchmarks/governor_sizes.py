"""One table of the governor trade-off per network size × accelerator clock × governor (issue #14).

Reads the JSON files that ``benchmarks/governor_tradeoff.py`` writes, one per trained network (by default 2L-64H,
2L-128H and 2L-256H, each trained with ``experiments/configs/train_default.toml`` changed only in
``[model] hidden_size``), and writes one Markdown table: the fraction of steps within the budget, p99.9 and max
modelled latency, the knee-tracking ratio to the PD, the held-out torque R², falls — and whether the row meets a
hardware engineer's bar (every step within the budget, knee ≤ 1.2× the PD, R² ≥ 0.97 on both joints, no falls).
The numbers are copied, not recomputed: units and denominators are those of ``governor_tradeoff.py`` (its header,
repeated per input below the table).

    .venv/bin/python benchmarks/governor_sizes.py \\
        [--input 2L-64H=benchmarks/results/governor_tradeoff_h64.json ...] \\
        [--governors none,reactive,predictive,predictive-split] [--out benchmarks/results/governor_sizes.md]

Inputs with the same label (e.g. a second run that adds a governor) are merged; a configuration missing from all of
a label's inputs (an unfinished run) is listed as "not run".
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.tables import percent_floor

RESULTS = Path("benchmarks/results")  # relative to the repository root, where the script is run from
DEFAULT_INPUTS = (
    f"2L-64H={RESULTS / 'governor_tradeoff_h64.json'}",
    f"2L-64H={RESULTS / 'governor_tradeoff_h64_worst.json'}",
    f"2L-128H={RESULTS / 'governor_tradeoff.json'}",
    f"2L-256H={RESULTS / 'governor_tradeoff_h256.json'}",
    f"2L-256H={RESULTS / 'governor_tradeoff_h256_worst.json'}",
)
DEFAULT_GOVERNORS = "none,reactive,predictive,predictive-worst,predictive-split"
DEFAULT_CLOCKS = "100,125,200"
# Is "every step within the budget" guaranteed by construction (docs/governor.md), and on which accelerator?
GUARANTEE = {
    "none": "no",
    "reactive": "no",
    "predictive": "no",
    "predictive-worst": "yes, while a Θ ≤ 511 fits",
    "predictive-split": "yes, while a Θ fits; needs a stop between layers",
    "predictive-oracle": "ceiling (no host)",
}


@dataclass(frozen=True)
class Bar:
    """What a row must meet to be deployable: the acceptance bar of the size comparison."""

    within_frac: float = 1.0  # every step within the budget
    knee_ratio: float = 1.2  # knee tracking RMSE ≤ 1.2× the PD's on the same episodes
    r2: float = 0.97  # held-out torque R², knee and ankle
    falls: int = 0

    def misses(self, row: dict[str, Any]) -> list[str]:
        """The parts of the bar ``row`` misses (empty: it meets all of them)."""
        out = []
        if row["within_frac"] is None or row["within_frac"] < self.within_frac:
            out.append("late steps")
        if row["knee_ratio"] is None or row["knee_ratio"] > self.knee_ratio:
            out.append("knee")
        if min(row["r2_knee"], row["r2_ankle"]) < self.r2:
            out.append("R²")
        if row["falls"] > self.falls:
            out.append("falls")
        return out


def load(spec: str) -> tuple[str, dict[str, Any]]:
    """``LABEL=PATH`` → (label, the benchmark's JSON document); a missing file gives an empty document."""
    label, _, path = spec.partition("=")
    if not path:
        raise SystemExit(f"--input wants LABEL=PATH, got {spec!r}")
    p = Path(path)
    doc: dict[str, Any] = json.loads(p.read_text()) if p.exists() else {"rows": [], "header": f"{p}: not run"}
    doc["path"] = str(p)
    return label, doc


def merge(docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Group the inputs by label, keeping the labels' first-seen order: (label, [documents])."""
    out: dict[str, list[dict[str, Any]]] = {}
    for label, doc in docs:
        out.setdefault(label, []).append(doc)
    return list(out.items())


def _within(row: dict[str, Any]) -> str:
    frac = row["within_frac"]
    if frac is None:
        return "–"
    pct = "100 %" if row["within"] == row["steps"] else percent_floor(row["within"], row["steps"])
    return f"{pct} ({row['within']:,}/{row['steps']:,})"


def _num(v: float | None, fmt: str) -> str:
    return "–" if v is None else fmt.format(v)


def table(docs: list[tuple[str, list[dict[str, Any]]]], clocks: list[float], governors: list[str], bar: Bar) -> str:
    """The size × clock × governor Markdown table (rows in that order), with its header and the inputs' headers."""
    head = [
        "size",
        "MHz",
        "governor",
        "within 21 µs (steps)",
        "p99.9 µs",
        "max µs",
        "knee / PD",
        "R² knee / ankle",
        "falls",
        "misses the bar",
        "guaranteed",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, group in docs:
        by_key = {(float(r["clock_mhz"]), r["governor"]): r for doc in group for r in doc["rows"]}
        for clock in clocks:
            for gov in governors:
                r = by_key.get((clock, gov))
                if r is None:
                    lines.append(f"| {label} | {clock:g} | {gov} | not run |" + " |" * (len(head) - 4))
                    continue
                missed = bar.misses(r)
                cells = [
                    label,
                    f"{clock:g}",
                    gov,
                    _within(r),
                    _num(r["p99_9_us"], "{:.1f}"),
                    _num(r["max_us"], "{:.1f}"),
                    _num(r["knee_ratio"], "{:.2f}"),
                    f"{r['r2_knee']:.3f} / {r['r2_ankle']:.3f}",
                    f"{r['falls']}/{r['episodes']}",
                    ", ".join(missed) if missed else "**meets all**",
                    GUARANTEE.get(gov, "?"),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def document(docs: list[tuple[str, list[dict[str, Any]]]], clocks: list[float], governors: list[str], bar: Bar) -> str:
    intro = (
        "# Governor trade-off per network size and clock\n\n"
        "Written by `benchmarks/governor_sizes.py` from the `benchmarks/governor_tradeoff.py` results below. Every "
        "network: 2 layers, `ampro` features, trained by `experiments/configs/train_default.toml` (2L-64H) with only "
        "`[model] hidden_size` changed (128: `train_default_h128.toml`, 256: `train_default_h256.toml`; seed 0). "
        "EdgeDRNN model, budget 21 µs per step, deadline policy `hold` (a late step holds the last torque), closed "
        "loop over seeds 0–4 × 0.8 / 1.0 / 1.2 m/s × flat ground × 20 s, domain-randomised (15 episodes, 60,000 "
        "steps when none falls).\n\n"
        "- **within 21 µs**: steps whose modelled latency ≤ 21 µs / steps run — an episode that falls runs fewer "
        "steps, so the denominator is the steps actually run;\n"
        "- **p99.9 / max µs**: modelled latency pooled over those steps, µs;\n"
        "- **knee / PD**: Σ knee tracking RMSE / Σ the PD's knee RMSE on the same episodes (RMSE against the AMPRO "
        "desired trajectory);\n"
        "- **R² knee / ankle**: torque R² of an open-loop replay of the held-out PD walk (`pd_walk.csv`, 4,000 steps "
        "of 5 ms, same governor, clock and policy);\n"
        "- **falls**: episodes that fell / episodes;\n"
        f"- **misses the bar**: which of these the row fails — every step within 21 µs, knee ≤ {bar.knee_ratio:g}× "
        f"the PD, R² ≥ {bar.r2:g} on both joints, {bar.falls} falls (on this grid: measured, not proven);\n"
        "- **guaranteed**: whether no step can be late by construction — `predictive-worst` prices every step with "
        "an upper bound, `predictive-split` prices each layer exactly but assumes an accelerator that stops between "
        "layers with Θ rewritable there; `none`, `reactive` and `predictive` (an estimate) run on the published "
        "accelerator without a guarantee (docs/governor.md; the predictive ones need every layer's h read back).\n\n"
    )
    sources = "\n".join(f"- {label}: `{doc['path']}` — {doc['header']}" for label, group in docs for doc in group)
    return intro + table(docs, clocks, governors, bar) + "\nInputs:\n\n" + sources + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", help="LABEL=PATH of a governor_tradeoff.py JSON (repeat)")
    p.add_argument("--clocks", default=DEFAULT_CLOCKS, help="accelerator clocks to list, MHz")
    p.add_argument("--governors", default=DEFAULT_GOVERNORS, help="governors to list")
    p.add_argument("--out", default=str(RESULTS / "governor_sizes.md"))
    args = p.parse_args(argv)
    docs = merge([load(s) for s in (args.input or DEFAULT_INPUTS)])
    clocks = [float(c) for c in args.clocks.split(",") if c.strip()]
    governors = [g.strip() for g in args.governors.split(",") if g.strip()]
    text = document(docs, clocks, governors, Bar())
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
