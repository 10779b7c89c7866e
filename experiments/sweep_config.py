"""Sweep configuration: a TOML file → the list of independent tasks of `legloop sweep`, each a flat dict of typed
parameters with a stable id.

A task is one episode (one controller, one scenario, one seed) evaluated in closed loop — or replayed open loop —
and, when its controller is trained by the sweep, the training task it depends on. Every parameter a task can take is
in :data:`PARAMS` (name, type, default, what it means); ``docs/sweep.md`` shows the file format::

    description = "…"           # optional, copied into sweep.json
    baseline = "pd"             # label of the controller each episode's knee RMSE is divided by ("" = none)

    [defaults]                  # parameters every task starts from
    seconds = 60.0
    checkpoint = "runs/final"

    [[grid]]                    # the Cartesian product of its list-valued keys (axes); scalars are fixed
    controller = ["pd", "deltagru"]
    theta_h = [0.25, 0.5]       # dropped from the pd tasks (pd takes no threshold): they coincide and run once
    seed = [0, 1, 2]
    scenario = [                # a named axis whose points set several parameters at once
        { speed = 0.8 },
        { speed = 1.0, slope_deg = 3.0, random_slope = false },
    ]

    [[task]]                    # single tasks, besides (or instead of) grids
    controller = "edgedrnn"
    policy = "period"

Training: a learned controller with ``train_config`` (a training TOML) and/or ``train.<key>`` overrides of it
(``train.model.hidden_size = [64, 128]``) gets its network from a training task of the sweep, one per distinct
training configuration, shared by every evaluation task that uses it.

Parameters a task's controller does not take (``theta_h`` for the PD, a checkpoint for the PD) are left out of that
task, so tasks that then coincide run once; a grid that gives such a parameter to none of its tasks is an error.
Every error names the key, where it was and what was expected (:class:`SweepConfigError`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controllers.features import FEATURE_SETS
from experiments.train_config import CONFIG_DIR, DEFAULT_CONFIG
from hil.governors import GOVERNORS, governor_name

LEARNED = ("gru", "deltagru", "edgedrnn")
BUILTIN = ("pd", "zero", "damped")
POLICIES_RL = ("rl",)  # a residual RL policy directory of `legloop rl train` (PD + its correction)
CONTROLLER_NAMES = BUILTIN + LEARNED + POLICIES_RL
WITH_CHECKPOINT = LEARNED + POLICIES_RL
DELTA = ("deltagru", "edgedrnn")
POLICIES = ("hold", "fallback_pd", "stop", "period", "none")

TRAIN_PREFIX = "train."
TOP_LEVEL = ("description", "baseline", "defaults", "grid", "task")


class SweepConfigError(ValueError):
    """A sweep configuration that cannot be used: one line naming the key, where it is, and what was expected."""


@dataclass(frozen=True)
class Param:
    """One task parameter: JSON type (``int``, ``float``, ``str``, ``bool``), default, which part of the run it
    describes (``controller``, ``train``, ``scenario``, ``run``), the controllers that take it (None: every one),
    a check of its value (returns what was expected, or None when the value is fine) and its meaning."""

    name: str
    type: type
    default: Any
    group: str
    help: str
    applies: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False


def _range(lo: float, hi: float, unit: str = "", lo_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = (lo < v if lo_open else lo <= v) and v <= hi
        return None if ok else f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]{' ' + unit if unit else ''}"

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"one of {', '.join(repr(c) for c in choices)}"


def _non_negative_int(v: Any) -> str | None:
    return None if v >= 0 else "an integer >= 0"


def _non_empty(v: Any) -> str | None:
    return None if v else "a non-empty string"


PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        # ---- the controller (hil.spec.ControllerSpec)
        Param("controller", str, None, "controller", "pd | zero | damped | gru | deltagru | edgedrnn | rl",
              check=_one_of(CONTROLLER_NAMES)),
        Param("label", str, None, "controller", "name in results (default: the controller, `pd*0.5` for a scaled PD)",
              nullable=True, check=_non_empty),
        Param("checkpoint", str, None, "controller", "a checkpoint .pt or a training run directory (rl: the run "
              "directory of legloop rl train, or one of its checkpoints/step_N)", WITH_CHECKPOINT,
              nullable=True, check=_non_empty),
        Param("feature_set", str, None, "controller", "require the checkpoint's feature set (ampro | sensors)",
              LEARNED, nullable=True, check=_one_of(FEATURE_SETS)),
        Param("gain_scale", float, 1.0, "controller", "multiplies the PD gains", ("pd",),
              check=_range(0.0, 10.0, lo_open=True)),
        Param("theta_x", float, None, "controller", "input delta threshold, normalised units (default: the "
              "checkpoint's)", DELTA, nullable=True, check=_range(0.0, 2.0)),
        Param("theta_h", float, None, "controller", "hidden delta threshold, normalised units (default: the "
              "checkpoint's)", DELTA, nullable=True, check=_range(0.0, 2.0)),
        Param("policy", str, None, "controller", "deadline policy (default: hold on edgedrnn, none on the CPU)",
              LEARNED, nullable=True, check=_one_of(POLICIES)),
        Param("budget_us", float, 21.0, "controller", "latency budget per step, µs", LEARNED,
              check=_range(0.0, 1e6, "µs", lo_open=True)),
        Param("governor", str, None, "controller", "run-time threshold governor: reactive | predictive | "
              "predictive-worst (true = reactive)", ("edgedrnn",), nullable=True, check=_one_of(GOVERNORS)),
        Param("clock_mhz", float, 125.0, "controller", "accelerator clock, MHz", ("edgedrnn",),
              check=_range(0.0, 10_000.0, "MHz", lo_open=True)),
        # ---- training (a training task of the sweep makes the checkpoint)
        Param("train_config", str, None, "train", "training config TOML (beside the sweep file, or in "
              "experiments/configs/); with train.<key> overrides: the sweep trains the network", LEARNED,
              nullable=True, check=_non_empty),
        # ---- the scenario (experiments.evaluate.EvalConfig, the env's options)
        Param("speed", float, 1.0, "scenario", "walking speed, m/s", check=_range(0.6, 1.5, "m/s")),
        Param("slope_deg", float, 0.0, "scenario", "ground slope, degrees, uphill positive",
              check=_range(-10.0, 10.0, "degrees")),
        Param("randomize", bool, True, "scenario", "domain randomisation: body, friction, sensor noise level, slope"),
        Param("random_slope", bool, True, "scenario", "with randomize: the slope varies ±5° around slope_deg "
              "(false: it is slope_deg exactly)"),
        Param("sensor_noise", float, 1.0, "scenario", "sensor noise, × the default level (0: none)",
              check=_range(0.0, 10.0)),
        Param("push_n", float, 0.0, "scenario", "trunk pushes of this force during the episode, N (8 pushes, "
              "alternating direction, 1.13 s apart from 3 s, 0.1 s each; 0: none)", check=_range(0.0, 2000.0, "N")),
        Param("actuation_delay_ms", float, 0.0, "scenario", "torque-to-motor latency added to any controller, ms",
              check=_range(0.0, 1000.0, "ms")),
        Param("jitter_ms", float, 0.0, "scenario", "plus a uniform [0, J] ms delay per period (seeded)",
              check=_range(0.0, 1000.0, "ms")),
        Param("link_faults", str, "", "scenario", "edgedrnn only: run on the emulated board over a pty instead "
              '("board"), with seeded link faults ("drop=0.01,corrupt=0.01,truncate=0.005,seed=3"); "": in process',
              applies=("edgedrnn",), nullable=True),
        # ---- the run
        Param("seed", int, 0, "run", "episode seed", check=_non_negative_int),
        Param("seconds", float, 60.0, "run", "episode length, s", check=_range(0.0, 3600.0, "s", lo_open=True)),
        Param("push_trials", bool, False, "run", "also search the largest push survived (8 push magnitudes, slow)"),
        Param("replay", str, None, "run", "open loop instead of closed loop: 'pd' replays a fresh PD walk of this "
              "scenario and seed, else the path of a log (AMPRO CSV)", LEARNED, nullable=True, check=_non_empty),
        Param("run_logs", bool, False, "run", "write the episode's per-step run log into the task directory"),
    )
}  # fmt: skip

# Parameters that describe the conditions an episode ran under: episodes that agree on these are compared with the
# baseline controller's (knee RMSE ratio).
# The physical condition of an episode, shared by every controller (a controller-specific scenario such as
# link_faults is not part of it: the baseline PD of an edgedrnn task over a faulty link walks the same condition).
CONDITION = (*(n for n, p in PARAMS.items() if p.group == "scenario" and p.applies is None), "seed", "seconds")


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` ``train`` or ``eval``; ``params`` flat and typed (every parameter of
    :data:`PARAMS`, None where the task's controller does not take it, plus ``train.<key>`` overrides); ``train``
    the resolved training configuration of a train task; ``needs`` the id of the training task an eval task uses."""

    id: str
    kind: str
    params: dict[str, Any]
    train: dict[str, Any] | None = None
    needs: str | None = None


@dataclass
class SweepConfig:
    """A loaded sweep: its source, description, baseline label and the expanded tasks (training tasks first)."""

    path: Path
    description: str
    baseline: str
    raw: dict[str, Any]
    tasks: list[Task] = field(default_factory=list)

    @property
    def eval_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.kind == "eval"]

    @property
    def train_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.kind == "train"]


# ------------------------------------------------------------------------------------------------------ values
def _typename(tp: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[tp]


def _value(name: str, value: Any, where: str) -> Any:
    """Check one parameter value (type, then range); return it converted (ints pass as floats)."""
    if name.startswith(TRAIN_PREFIX):
        if isinstance(value, (dict, list)) and not (isinstance(value, list) and all(
                not isinstance(v, (dict, list)) for v in value)):  # fmt: skip
            raise SweepConfigError(f"{where}{name} must be a training config value, got {value!r}")
        return value
    p = PARAMS.get(name)
    if p is None:
        raise SweepConfigError(f"unknown parameter {where}{name}; parameters are: {', '.join(PARAMS)}, train.<key>")
    if value is None or (p.nullable and value == ""):
        if p.nullable or p.default is None:
            return None
    if name == "governor" and isinstance(value, bool):
        return governor_name(value)  # the parameter was a bool before the predictive governor: true = reactive
    tp = p.type
    ok = (
        isinstance(value, bool)
        if tp is bool
        else isinstance(value, tp) and not isinstance(value, bool)
        if tp is not float
        else isinstance(value, (int, float)) and not isinstance(value, bool)
    )
    if not ok:
        null = ' (or "" for the default)' if p.nullable else ""
        raise SweepConfigError(
            f"{where}{name} must be {_typename(tp)}{null} ({p.help}), got {type(value).__name__} {value!r}"
        )
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            raise SweepConfigError(f"{where}{name} must be a finite number, got {value!r}")
    if p.check is not None:
        expected = p.check(value)
        if expected is not None:
            raise SweepConfigError(f"{where}{name} must be {expected} ({p.help}), got {value!r}")
    return value


def _flatten(table: dict[str, Any]) -> dict[str, Any]:
    """``train = {model = {hidden_size = 64}}`` (TOML's dotted keys) → ``{"train.model.hidden_size": 64}``."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if k == "train" and isinstance(v, dict):

            def walk(prefix: str, d: dict[str, Any]) -> None:
                for kk, vv in d.items():
                    if isinstance(vv, dict):
                        walk(f"{prefix}{kk}.", vv)
                    else:
                        out[f"{prefix}{kk}"] = vv

            walk(TRAIN_PREFIX, v)
        else:
            out[k] = v
    return out


def _point(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{where} must be a table of parameters, got {raw!r}")
    flat = _flatten(raw)
    return {k: _value(k, v, f"{where}.") for k, v in flat.items()}


def _is_axis_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _grid(raw: Any, where: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The parameter dicts of one [[grid]] (before defaults) and the parameters it sets explicitly."""
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{where} must be a table, got {raw!r}")
    fixed: dict[str, Any] = {}
    axes: list[list[dict[str, Any]]] = []
    given: set[str] = set()
    for key, value in _flatten(raw).items():
        if _is_axis_of_tables(value) and key not in PARAMS:
            points = [_point(v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
            axes.append(points)
            for pt in points:
                given |= set(pt)
        elif isinstance(value, list):
            if not value:
                raise SweepConfigError(f"{where}.{key} is an empty list: an axis needs at least one value")
            axes.append([{key: _value(key, v, f"{where}.{key}[{i}] → ")} for i, v in enumerate(value)])
            given.add(key)
        elif isinstance(value, dict):
            raise SweepConfigError(
                f"{where}.{key} must be a value or a list of values (an axis), or a list of tables (a named axis), "
                f"got a table"
            )
        else:
            fixed[key] = _value(key, value, f"{where}.")
            given.add(key)
    combos = []
    for combo in itertools.product(*axes):
        params = dict(fixed)
        for pt in combo:
            params |= pt
        combos.append(params)
    return combos, given


# ------------------------------------------------------------------------------------------------------ tasks
def applies(name: str, controller: str) -> bool:
    """Whether a task whose controller is ``controller`` takes parameter ``name``."""
    if name.startswith(TRAIN_PREFIX):
        return controller in LEARNED
    applies = PARAMS[name].applies
    return applies is None or controller in applies


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    keep = [c if c.isalnum() or c in "+-." else "_" for c in text]
    return "".join(keep).strip("_")[:40] or "task"


def resolve_path(value: str, base: Path, search: tuple[Path, ...] = ()) -> Path:
    """A path of the config: absolute as is; relative: the current directory, then beside the sweep file, then
    ``search`` (the first that exists; else relative to the current directory)."""
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        return p
    for root in (Path.cwd(), base, *search):
        if (root / p).exists():
            return (root / p).resolve()
    return (Path.cwd() / p).resolve()


def _train_config(params: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """The resolved training configuration (TrainConfig as a dict) of a task that trains its controller."""
    from experiments.train_config import ConfigError, config_from_dict, load_config

    given = params.get("train_config")
    path = resolve_path(given, base, (CONFIG_DIR,)) if given else DEFAULT_CONFIG
    try:
        cfg = load_config(path).full_dict()
    except ConfigError as exc:
        raise SweepConfigError(f"{where}train_config: {exc}") from None
    for key, value in params.items():
        if not key.startswith(TRAIN_PREFIX):
            continue
        parts = key[len(TRAIN_PREFIX) :].split(".")
        node = cfg
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise SweepConfigError(f"{where}{key}: the training config has no table [{part}]")
            node = node[part]
        if parts[-1] not in node:
            valid = ", ".join(k for k in node if not isinstance(node[k], dict))
            raise SweepConfigError(f"{where}{key}: unknown training config key; valid keys there are: {valid}")
        node[parts[-1]] = value
    try:
        return config_from_dict(cfg).to_dict()
    except ConfigError as exc:
        raise SweepConfigError(f"{where}training config: {exc}") from None


def _finish(given: dict[str, Any], base: Path, where: str, checked: dict[str, bool]) -> tuple[Task, Task | None]:
    """Fill defaults, drop what the controller does not take, resolve paths, validate; (eval task, train task).

    ``checked``: the parameters the grid gives explicitly → whether one of its tasks took it so far (updated)."""
    controller = given.get("controller")
    if controller is None:
        raise SweepConfigError(f"{where}controller is missing: every task needs one of {', '.join(CONTROLLER_NAMES)}")
    params: dict[str, Any] = {}
    for name, p in PARAMS.items():
        value = given.get(name, p.default)
        params[name] = value if applies(name, controller) else None
    train_keys = {k: v for k, v in given.items() if k.startswith(TRAIN_PREFIX)}
    for name in checked:
        if applies(name, controller):
            checked[name] = True
    trains = controller in LEARNED and (params["train_config"] is not None or bool(train_keys))
    if controller in LEARNED:
        params |= train_keys
    if params["replay"] is not None and params["replay"] != "pd":
        params["replay"] = str(resolve_path(params["replay"], base))
    train_task = None
    if trains:
        if "checkpoint" in checked and given.get("checkpoint") is not None:
            raise SweepConfigError(f"{where}checkpoint and train_config/train.<key> exclude each other")
        params["checkpoint"] = None
        if params["train_config"] is not None:
            cfg_path = resolve_path(params["train_config"], base, (CONFIG_DIR,))
            params["train_config"] = str(cfg_path)
        cfg = _train_config(params, base, where)
        # Flat like every task: the parameters of PARAMS (None: not a training parameter) and the train.<key> ones.
        train_params = {
            k: (v if k == "train_config" or k.startswith(TRAIN_PREFIX) else None) for k, v in params.items()
        }
        tid = f"train-h{cfg['model']['hidden_size']}x{cfg['model']['num_layers']}-s{cfg['seed']}-{_digest(cfg)}"
        train_task = Task(tid, "train", train_params, train=cfg)
    elif controller in WITH_CHECKPOINT:
        if params["checkpoint"] is None:
            how = "" if controller in POLICIES_RL else " (or train_config / train.<key> to train one)"
            raise SweepConfigError(
                f"{where}checkpoint is missing: controller {controller!r} needs a checkpoint{how}; "
                "pass --set checkpoint=PATH"
            )
        ckpt = resolve_path(params["checkpoint"], base)
        if not ckpt.exists():
            raise SweepConfigError(f"{where}checkpoint {params['checkpoint']!r}: no such file or directory ({ckpt})")
        params["checkpoint"] = str(ckpt)
    if params["link_faults"]:
        from hil.board_backend import link_from_text

        try:
            link_from_text(params["link_faults"])
        except ValueError as exc:
            raise SweepConfigError(f"{where}{exc}") from None
    # ControllerSpec's own checks (no file is read), so a bad combination fails here, not in a worker.
    from hil.spec import ControllerSpec

    try:
        ControllerSpec(**spec_kwargs(params, checkpoint=params["checkpoint"] or ("<trained>" if trains else None)))
    except ValueError as exc:
        raise SweepConfigError(f"{where}{exc}") from None
    if params["replay"] is not None and params["push_trials"]:
        raise SweepConfigError(f"{where}push_trials does not apply to an open-loop replay (replay is set)")
    # The id: the controller's label and the seed, then a hash of every value that differs from its default (so a
    # parameter added later, with a default, leaves the ids of earlier sweeps as they were).
    identity = {k: v for k, v in params.items() if k not in PARAMS or (v is not None and v != PARAMS[k].default)}
    if train_task is not None:
        identity = {k: v for k, v in identity.items() if k != "train_config" and not k.startswith(TRAIN_PREFIX)}
        identity["train"] = train_task.id
    scale = params["gain_scale"]
    label = params["label"] or (controller if scale in (None, 1.0) else f"{controller}x{scale:g}")
    kind = "replay" if params["replay"] is not None else f"v{params['speed']:g}"
    tid = f"{_slug(label)}-{kind}-s{params['seed']}-{_digest(identity)}"
    return Task(tid, "eval", params, needs=train_task.id if train_task else None), train_task


def spec_kwargs(params: dict[str, Any], checkpoint: str | None) -> dict[str, Any]:
    """The :class:`hil.spec.ControllerSpec` keyword arguments of a task's parameters."""
    learned = params["controller"] in LEARNED
    kw: dict[str, Any] = {"name": params["controller"], "label": params["label"]}
    if params["controller"] == "pd":
        kw["gain_scale"] = params["gain_scale"]
    if params["controller"] in POLICIES_RL:
        kw["checkpoint"] = checkpoint
    if learned:
        kw |= {
            "checkpoint": checkpoint,
            "feature_set": params["feature_set"],
            "policy": params["policy"],
            "budget_s": params["budget_us"] * 1e-6,
        }
    if params["controller"] in DELTA:
        kw |= {"theta_x": params["theta_x"], "theta_h": params["theta_h"]}
    if params["controller"] == "edgedrnn":
        kw |= {"governor": params["governor"], "clock_hz": params["clock_mhz"] * 1e6}
    return kw


# ------------------------------------------------------------------------------------------------------ loading
def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items → defaults overrides; VALUE is read as a TOML value, else as a plain string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set checkpoint=runs/final")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out[key] = value
    return out


def load_sweep(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read, validate and expand a sweep file; ``overrides`` replace ``[defaults]`` values (``--set``)."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SweepConfigError(f"sweep config {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepConfigError(f"cannot read sweep config {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepConfigError(f"{p} is not valid TOML: {exc}") from None
    try:
        return expand(raw, p, overrides or {})
    except SweepConfigError as exc:
        raise SweepConfigError(f"{p}: {exc}") from None


def _override(
    defaults: dict[str, Any], grids: list[Any], singles: list[Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """``--set KEY=VALUE``: KEY takes VALUE in [defaults] and in every [[grid]] and [[task]] (also inside the points
    of a named axis); a list VALUE becomes an axis of every grid."""
    defaults = dict(defaults)
    new_grids, new_singles = [], []
    for key, value in overrides.items():
        if isinstance(value, dict):
            raise SweepConfigError(f"--set {key}: expected a value or a list of values, got a table")
        if not isinstance(value, list):
            defaults[key] = _value(key, value, "--set ")
        else:
            for i, v in enumerate(value):
                _value(key, v, f"--set {key}[{i}] → ")
    for g in grids:
        if not isinstance(g, dict):
            raise SweepConfigError(f"[[grid]] entries must be tables, got {g!r}")
        g = _flatten(g)
        for k, v in list(g.items()):
            if _is_axis_of_tables(v) and k not in PARAMS:
                g[k] = [{kk: vv for kk, vv in _flatten(pt).items() if kk not in overrides} for pt in v]
        new_grids.append(g | overrides)
    for t in singles:
        if not isinstance(t, dict):
            raise SweepConfigError(f"[[task]] entries must be tables, got {t!r}")
        scalars = {k: v for k, v in overrides.items() if not isinstance(v, list)}
        if len(scalars) < len(overrides) and singles:
            raise SweepConfigError("--set with a list applies to [[grid]] sweeps; this file has [[task]] tables")
        new_singles.append(_flatten(t) | scalars)
    return defaults, new_grids, new_singles


def expand(raw: dict[str, Any], path: Path, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """The tasks of a parsed sweep file (see the module docstring); raises :class:`SweepConfigError`."""
    unknown = [k for k in raw if k not in TOP_LEVEL]
    if unknown:
        raise SweepConfigError(f"unknown top-level key(s) {', '.join(unknown)}; valid keys are: {', '.join(TOP_LEVEL)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SweepConfigError(f"description must be a string, got {description!r}")
    baseline = raw.get("baseline", "pd")
    if not isinstance(baseline, str):
        raise SweepConfigError(f'baseline must be a controller label (a string, "" for none), got {baseline!r}')
    defaults = _point(raw.get("defaults", {}), "[defaults]")
    grids = raw.get("grid", [])
    singles = raw.get("task", [])
    if not isinstance(grids, list) or not isinstance(singles, list):
        raise SweepConfigError("grid and task must be arrays of tables ([[grid]], [[task]])")
    if overrides:
        defaults, grids, singles = _override(defaults, grids, singles, overrides)
    if not grids and not singles:
        raise SweepConfigError("no tasks: give at least one [[grid]] or [[task]] table")
    base = path.resolve().parent
    tasks: dict[str, Task] = {}
    trains: dict[str, Task] = {}
    sources: list[tuple[str, list[dict[str, Any]], set[str]]] = []
    for i, g in enumerate(grids):
        combos, given = _grid(g, f"[[grid]] {i + 1}")
        sources.append((f"[[grid]] {i + 1}: ", combos, given))
    for i, t in enumerate(singles):
        pt = _point(t, f"[[task]] {i + 1}")
        sources.append((f"[[task]] {i + 1}: ", [pt], set(pt)))
    for where, combos, given in sources:
        # Which explicitly given controller options reach at least one task of this grid.
        checked = {k: False for k in given if k != "controller"}
        for combo in combos:
            task, train = _finish(defaults | combo, base, where, checked)
            tasks.setdefault(task.id, task)
            if train is not None:
                trains.setdefault(train.id, train)
        unused = [k for k, used in checked.items() if not used]
        if unused and "controller" not in (overrides or {}):  # --set controller=… drops what it does not take
            k = unused[0]
            who = ", ".join(PARAMS[k].applies or ()) if k in PARAMS else ", ".join(LEARNED)
            raise SweepConfigError(f"{where}{k} applies to {who} only, and no task here runs one")
    return SweepConfig(path.resolve(), description, baseline, raw, [*trains.values(), *tasks.values()])
