"""`legloop report`: the stability and latency report of closed-loop runs and sweeps, from their files alone.

Modules, in the order the data flows:

``load``     run directories → :class:`~experiments.report.load.ReportInput` (metrics, run logs, replays, training
             stages), reading the documented file formats; never imports the code that wrote them (envs,
             controllers, hil, firmware_bridge), so runs from another machine report the same.
``gait``     heel strikes from the logged foot force, strides on the normalised gait cycle, return-map sections.
``summary``  one row per controller, ratios to the PD, the verdict in words; summary.json and summary.md.
``figures``  matplotlib figures (Agg) as small PNGs; ``render`` redraws the walk with MuJoCo in a child process.
``html``     the self-contained page.
``sweep``    a `legloop sweep` directory's sweep.json → points by varied parameters, Pareto fronts, deadline rows,
             falls against added latency; ``sweep_figures`` draws them, ``sweep_page`` is their page section and
             summary.md part.
``build``    :func:`build_report`, which ties them together.
"""

from experiments.report.build import ReportExistsError, ReportOptions, ReportResult, build_report
from experiments.report.load import ReportInputError

__all__ = ["ReportExistsError", "ReportInputError", "ReportOptions", "ReportResult", "build_report"]
