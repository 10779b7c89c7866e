"""Configuration of `legloop train`: a typed dataclass tree loaded from TOML, with strict validation.

The TOML file mirrors the dataclasses: top-level keys (``seed``, ``feature_set``, ``target``, ``workers``) and one
table per part (``[model]``, ``[data]``, ``[optim]``, ``[bc]``, ``[dagger]``, ``[delta]``, ``[logs]``, ``[aux]``).
Unknown keys are rejected by their full dotted name (a typo must not silently fall back to a default), values are
type-checked (an int where a float is expected is accepted; a bool is never a number) and range-checked, and every
error names the key and the file.

`legloop train` without ``--config`` uses ``experiments/configs/train_default.toml`` (with ``--data``:
``experiments/configs/train_logs.toml``); every key that a file leaves out takes the dataclass default below, so a
small override file is enough.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from controllers.deltagru import HIDDEN_SIZES
from controllers.features import FEATURE_NAMES, FEATURE_SETS, TARGETS
from controllers.fixedpoint import MAX_LAYERS, THETA_MAX_VALUE

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "train_default.toml"
T = TypeVar("T")
DISTIL_CONFIG = CONFIG_DIR / "train_distil.toml"  # `legloop train --expert rl:DIR` without --config
LOGS_CONFIG = CONFIG_DIR / "train_logs.toml"  # the default of `legloop train --data` (training from device logs)


class ConfigError(ValueError):
    """A training configuration that cannot be used; the message names the key."""


@dataclass
class ModelConfig:
    """The network: a DeltaGRU with a Linear output layer (sizes as the EdgeDRNN accelerator allows)."""

    hidden_size: int = 64  # as train_default.toml: 2L-64H meets 21 µs on every step (docs/governor.md)
    num_layers: int = 2
    # One multiplier per input feature on its z-score (empty: none), fixed in the checkpoint's normalisation: an input
    # with gain g crosses the one threshold Θx at 1/g of the change — a per-input threshold the accelerator does not
    # have (a push shows first in the thigh's velocity: docs/rl.md, seventh round).
    input_gain: list[float] = field(default_factory=list)

    def validate(self) -> None:
        _check(self.hidden_size in HIDDEN_SIZES, "model.hidden_size", "a multiple of 8 from 16 to 256")
        _check(1 <= self.num_layers <= MAX_LAYERS, "model.num_layers", f"1 … {MAX_LAYERS}")
        _check(all(0.0 < g <= 16.0 for g in self.input_gain), "model.input_gain", "multipliers in (0, 16]")


@dataclass
class DataConfig:
    """PD-baseline rollouts collected before training (ignored when ``--data`` gives logs)."""

    episodes: int = 24  # PD episodes, different seeds; val_fraction of them are held out
    seconds: float = 20.0  # length of each episode, s
    speeds: list[float] = field(default_factory=lambda: [0.8, 1.0, 1.2])
    randomize: bool = True  # domain randomisation (body, friction, slope, noise)
    val_fraction: float = 0.2  # fraction of episodes held out for validation (whole episodes: unseen seeds)
    # Training walks on slopes within ± this (degrees). 0 = flat ground, as in the paper, whose controller then met
    # slopes it had never seen; evaluation randomises slopes to ±5°.
    max_slope_deg: float = 0.0
    # Push trains in this fraction of the collected episodes (and DAgger rounds): `legloop eval`'s shape — pushes of
    # one magnitude (uniform in push_min_n … push_max_n N) alternating forward and backward every ~1.13 s from 2 s.
    # 0: none (the PD imitation). For distillation (--expert rl:DIR) the data then holds the expert's recoveries.
    push_fraction: float = 0.0
    push_min_n: float = 50.0
    push_max_n: float = 300.0
    # This fraction of the pushed episodes is pushed at every 2nd heel strike of the prosthetic foot instead (one
    # magnitude, alternating; envs.walker_env.HeelStrikePusher): the recoveries of an expert trained to them.
    push_heel_strike: float = 0.0
    # Distilling an RL expert (DART-style perturbation of its own episodes): [lo, hi] — in each collected episode the
    # expert's correction over its PD is applied scaled by a factor drawn uniformly in [lo, hi] (the labels stay its
    # own torques, and it follows the applied history), so the data holds the states a student's too small or too
    # large correction leads to. [1, 1]: off. Needs --expert rl:DIR.
    correction_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])

    def validate(self) -> None:
        _check(self.episodes >= 1, "data.episodes", ">= 1")
        _check(0.0 < self.seconds <= 600.0, "data.seconds", "in (0, 600]")
        _check(len(self.speeds) >= 1, "data.speeds", "a non-empty list of speeds")
        for s in self.speeds:
            _check(0.6 <= s <= 1.5, "data.speeds", "speeds within 0.6 … 1.5 m/s")
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction", "in [0, 1)")
        _check(0.0 <= self.max_slope_deg <= 10.0, "data.max_slope_deg", "in [0, 10] degrees")
        _check(0.0 <= self.push_fraction <= 1.0, "data.push_fraction", "in [0, 1]")
        _check(0.0 <= self.push_min_n <= self.push_max_n <= 2000.0, "data.push_min_n / push_max_n",
               "0 <= push_min_n <= push_max_n <= 2000 N")  # fmt: skip
        _check(0.0 <= self.push_heel_strike <= 1.0, "data.push_heel_strike", "in [0, 1]")
        cs = self.correction_scale
        _check(len(cs) == 2 and 0.0 <= cs[0] <= cs[1] <= 2.0, "data.correction_scale",
               "[lo, hi] with 0 <= lo <= hi <= 2 ([1, 1]: off)")  # fmt: skip


@dataclass
class OptimConfig:
    """Optimisation shared by all stages (the paper's code: windows of 100, Adam 5e-4, batch 32, L1, clip 200)."""

    window: int = 100  # window length of truncated BPTT (steps)
    warmup: int = 20  # first steps of every window not counted in the loss (the state warms up from zero)
    batch_size: int = 32
    lr: float = 5e-4
    loss: str = "l1"  # "l1" (paper) or "mse"
    grad_clip: float = 200.0  # max gradient norm
    window_stride: int = 0  # windows per epoch = training steps / stride (0: window − warmup, each step ~once)
    clamp_weights: bool = True  # keep weights in Q1.7's range [-1, 127/128] so QAT does not clip a trained net
    # Weight of mean |h_t − h_{t−1}| in the float stages (BC, DAgger): smoother hidden states, a network that is
    # already nearly sparse before the delta fine-tune (whose own weight is delta.l1_weight).
    l1_weight: float = 0.0
    # Distilling an RL expert (target pd_residual): weight each step's loss by 1 + correction_weight × (d / mean d)²,
    # d the part of the expert's correction its gait phase does not predict (experiments.train_data.
    # correction_weights) — the expert's reactions (push recoveries, falls, starts), rare in the data, count more than
    # its nominal walk. 0: off.
    correction_weight: float = 0.0

    def validate(self) -> None:
        _check(self.window >= 2, "optim.window", ">= 2")
        _check(self.l1_weight >= 0.0, "optim.l1_weight", ">= 0")
        _check(0.0 <= self.correction_weight <= 100.0, "optim.correction_weight", "in [0, 100] (0: off)")
        _check(0 <= self.warmup < self.window, "optim.warmup", "in [0, window)")
        _check(self.batch_size >= 1, "optim.batch_size", ">= 1")
        _check(0.0 < self.lr <= 1.0, "optim.lr", "in (0, 1]")
        _check(self.loss in ("l1", "mse"), "optim.loss", "'l1' or 'mse'")
        _check(self.grad_clip > 0.0, "optim.grad_clip", "> 0")
        _check(self.window_stride >= 0, "optim.window_stride", ">= 0")

    @property
    def stride(self) -> int:
        return self.window_stride or (self.window - self.warmup)


@dataclass
class BCConfig:
    """Behavioural cloning of the PD: plain GRU math (Θ = 0, no QAT)."""

    epochs: int = 6
    lr: float = 0.0  # 0: optim.lr

    def validate(self) -> None:
        _check(self.epochs >= 1, "bc.epochs", ">= 1")
        _check(0.0 <= self.lr <= 1.0, "bc.lr", "in [0, 1] (0 = optim.lr)")


@dataclass
class DaggerConfig:
    """DAgger rounds: the learner drives (mixed with the PD by β_k = beta_decay^k), the PD labels every step."""

    rounds: int = 3
    episodes: int = 8  # new episodes collected per round
    seconds: float = 20.0
    beta_decay: float = 0.5  # β_k = beta_decay ** k for round k = 1, 2, …
    epochs: int = 2  # fine-tune epochs on the grown data set per round
    lr: float = 0.0  # 0: optim.lr
    # Distilling an RL expert: after a step the learner drove, the expert takes the applied torque as its own
    # history (its previous action, which its policy observes; its rate limit), so its label answers the trajectory
    # the learner sees. Off (the default until measured): the expert labels from its own, never-applied commands.
    expert_follows: bool = False

    def validate(self) -> None:
        _check(self.rounds >= 0, "dagger.rounds", ">= 0")
        _check(self.episodes >= 1, "dagger.episodes", ">= 1")
        _check(0.0 < self.seconds <= 600.0, "dagger.seconds", "in (0, 600]")
        _check(0.0 <= self.beta_decay <= 1.0, "dagger.beta_decay", "in [0, 1]")
        _check(self.epochs >= 1, "dagger.epochs", ">= 1")
        _check(0.0 <= self.lr <= 1.0, "dagger.lr", "in [0, 1] (0 = optim.lr)")

    def beta(self, k: int) -> float:
        """Probability that the PD (not the learner) acts, in round k ≥ 1."""
        return float(self.beta_decay**k)


@dataclass
class DeltaConfig:
    """Delta fine-tune: thresholds on (normalised) inputs and hidden states, L1 penalty on Δh, QAT."""

    epochs: int = 5
    theta_x: float = 4 / 256  # the paper's Θx (normalised input units)
    theta_h: float = 96 / 256  # the paper's is 128/256; 96/256 measured better R² at the same sparsity
    l1_weight: float = 0.0  # weight of mean |h_t − h_{t−1}| (all layers) added to the loss: buys sparsity
    qat: bool = True  # Q8.8 activations / Q1.7 weights with straight-through rounding
    lr: float = 0.0  # 0: optim.lr
    # DAgger rounds with the delta network itself driving (its closed loop differs from the dense GRU's):
    # dagger.episodes new episodes each, β continuing the decay of the dense rounds, then `dagger_epochs` epochs.
    dagger_rounds: int = 1
    dagger_epochs: int = 2
    # Latency-aware training (issue #14): latency_weight × the hinge of a differentiable upper-bound surrogate of
    # EdgeDRNN's per-step latency over the budget (controllers/latency_surrogate.py), priced with this stage's Θx, Θh
    # at `latency_clock_mhz`, added to the loss of the delta stages. 0 (the default): not computed, the training is
    # exactly as without these keys. `latency_tau`: the width of the smooth threshold (network units; Θx is ~6/256).
    latency_weight: float = 0.0
    latency_budget_us: float = 21.0
    latency_clock_mhz: float = 125.0
    latency_tau: float = 1 / 256
    # > 0: the gradient of the count is that of a sigmoid this wide (straight-through; the value keeps latency_tau).
    latency_tau_grad: float = 0.0
    # The thresholds the final network runs at (written into controller.pt and its export), when not those it was
    # trained at; < 0: the trained ones. Trained at a higher Θh than it runs at, a network sees a staler ĥ in training
    # than in use; the RL expert's student kept the push gain that way, not when trained at the Θh it ran at
    # (docs/rl.md, eighth round). The stages' checkpoints (DIR/stages) keep the trained thresholds.
    run_theta_x: float = -1.0
    run_theta_h: float = -1.0

    def run_thresholds(self) -> tuple[float, float]:
        """(Θx, Θh) the final network runs at: ``run_theta_*`` where set (>= 0), else the trained ones."""
        return (
            self.run_theta_x if self.run_theta_x >= 0.0 else self.theta_x,
            self.run_theta_h if self.run_theta_h >= 0.0 else self.theta_h,
        )

    def validate(self) -> None:
        _check(self.epochs >= 1, "delta.epochs", ">= 1")
        for key in ("run_theta_x", "run_theta_h"):
            v = getattr(self, key)
            _check(v < 0.0 or v <= THETA_MAX_VALUE, f"delta.{key}", "in [0, 511/256] (the Θ register's range), or < 0")
        _check(0.0 <= self.latency_weight <= 1e4, "delta.latency_weight", "in [0, 10000] (0: no latency term)")
        _check(0.0 < self.latency_budget_us <= 1e6, "delta.latency_budget_us", "in (0, 1e6] µs")
        _check(0.0 < self.latency_clock_mhz <= 1000.0, "delta.latency_clock_mhz", "in (0, 1000] MHz")
        _check(0.0 < self.latency_tau <= 1.0, "delta.latency_tau", "in (0, 1] (network units)")
        _check(0.0 <= self.latency_tau_grad <= 1.0, "delta.latency_tau_grad", "in [0, 1] (0: latency_tau)")
        _check(self.dagger_rounds >= 0, "delta.dagger_rounds", ">= 0")
        _check(self.dagger_epochs >= 1, "delta.dagger_epochs", ">= 1")
        # The accelerator holds Θ as a Q8.8 integer in a 10-bit signed register: at most 511/256.
        _check(0.0 <= self.theta_x <= THETA_MAX_VALUE, "delta.theta_x", "in [0, 511/256] (the Θ register's range)")
        _check(0.0 <= self.theta_h <= THETA_MAX_VALUE, "delta.theta_h", "in [0, 511/256] (the Θ register's range)")
        _check(self.l1_weight >= 0.0, "delta.l1_weight", ">= 0")
        _check(0.0 <= self.lr <= 1.0, "delta.lr", "in [0, 1] (0 = optim.lr)")


@dataclass
class LogsConfig:
    """Training from logs (``--data``): budgets in gradient steps instead of epochs, a validation tail, early stopping.

    One minute of log is a few thousand steps: epochs sized for the simulator's hours of data would give it a few
    dozen gradient steps. From logs, each stage runs up to its budget of gradient steps (batches of
    ``optim.batch_size`` windows), validates every ``eval_every`` steps on the held-out tail of every log, keeps
    the best weights seen (lowest validation loss) and stops early when ``patience`` validations in a row did not
    improve on the best by the relative margin ``min_improvement``. The learning rate follows a cosine from the
    stage's rate down to ``lr_final`` times it at the end of the budget. ``bc.epochs`` / ``delta.epochs``,
    ``data.val_fraction`` and the DAgger settings do not apply.
    """

    val_fraction: float = 0.2  # the last fraction of each log's rows: validation (contiguous, never trained on)
    bc_steps: int = 400  # gradient-step budget of the float stage (bc)
    delta_steps: int = 200  # gradient-step budget of the delta fine-tune
    eval_every: int = 20  # validate every this many steps (and at the end of the budget)
    patience: int = 5  # validations without improvement before stopping (0: never stop early)
    min_improvement: float = 0.005  # relative decrease of the validation loss that counts as an improvement
    lr_final: float = 0.1  # the cosine learning-rate schedule ends at lr × lr_final (1: constant rate)

    def validate(self) -> None:
        _check(0.0 < self.val_fraction < 1.0, "logs.val_fraction", "in (0, 1)")
        _check(self.bc_steps >= 1, "logs.bc_steps", ">= 1")
        _check(self.delta_steps >= 1, "logs.delta_steps", ">= 1")
        _check(self.eval_every >= 1, "logs.eval_every", ">= 1")
        _check(self.patience >= 0, "logs.patience", ">= 0")
        _check(0.0 <= self.min_improvement < 1.0, "logs.min_improvement", "in [0, 1)")
        _check(0.0 < self.lr_final <= 1.0, "logs.lr_final", "in (0, 1]")


@dataclass
class AuxConfig:
    """An auxiliary gait-phase output, for training only: a linear head on the top layer's hidden state predicts the
    expert PD's domain (prosthesis stance / swing) and phase τ at every step, and its loss (MSE on the targets
    2·stance − 1 and 2·τ − 1, masked like the torque loss) is added with ``weight`` in every simulator stage.

    The labels come from the PD in simulation (the ``ishumanswing`` and ``tau`` columns of collected episodes), so
    this is for ``--data``-less training; a log without those columns is an error. The head shapes what the hidden
    state holds (a feature set without the PD's phase, ``sensors``, must infer it); it is not part of the
    checkpoint's network: the deployed delta-GRU and its export keep their two torque outputs. Weight 0 (the
    default) trains exactly as without this table.
    """

    weight: float = 0.0

    def validate(self) -> None:
        _check(0.0 <= self.weight <= 100.0, "aux.weight", "in [0, 100] (0: no auxiliary output)")


@dataclass
class TrainConfig:
    """Everything `legloop train` needs besides the data sources and the output directory."""

    seed: int = 0
    feature_set: str = "ampro"
    # "torque": the network outputs the torques; "pd_residual": a correction added to the PD's torque, which runs
    # beside it (distilling an RL expert: the network learns the residual policy's correction, the PD stays exact)
    target: str = "torque"
    workers: int = 2  # parallel simulation processes for data collection
    # Distilling a residual RL expert (--expert rl:DIR, target pd_residual): hold the network's correction to the
    # expert's own limits on its residual (bound, slew, torque envelope; controllers.command_limits.ResidualLimits),
    # on the host, in the DAgger rounds it drives and in the checkpoint. Off: only the expert's command limits.
    residual_limits: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    dagger: DaggerConfig = field(default_factory=DaggerConfig)
    delta: DeltaConfig = field(default_factory=DeltaConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)

    def validate(self) -> TrainConfig:
        _check(self.seed >= 0, "seed", ">= 0")
        _check(self.feature_set in FEATURE_SETS, "feature_set", f"one of {', '.join(FEATURE_SETS)}")
        _check(self.target in TARGETS, "target", f"one of {', '.join(TARGETS)}")
        _check(1 <= self.workers <= 64, "workers", "in 1 … 64")
        _check(
            not self.residual_limits or self.target == "pd_residual",
            "residual_limits",
            "false unless target = 'pd_residual' (they bound the expert's correction)",
        )
        _check(
            self.optim.correction_weight == 0.0 or self.target == "pd_residual",
            "optim.correction_weight",
            "0 unless target = 'pd_residual' (it weights the steps by the expert's correction over the PD)",
        )
        for part in (self.model, self.data, self.optim, self.bc, self.dagger, self.delta, self.logs, self.aux):
            part.validate()
        names = FEATURE_NAMES[self.feature_set]
        per = f"one multiplier per {self.feature_set!r} feature ({len(names)}: {', '.join(names)})"
        _check(len(self.model.input_gain) in (0, len(names)), "model.input_gain", f"empty or {per}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Every key, except ``target``, ``residual_limits``, ``optim.correction_weight``, ``dagger.expert_follows``,
        an ``[aux]`` table, ``data.push_heel_strike``, ``data.correction_scale``, ``model.input_gain``, the
        ``delta.latency_*`` and ``delta.run_theta_*`` keys left at their defaults (off): run directories, checkpoints
        and sweep task ids made before they existed describe the same training and still match."""
        d = dataclasses.asdict(self)
        if self.target == "torque":
            del d["target"]
        if not self.residual_limits:
            del d["residual_limits"]
        if self.optim.correction_weight == 0.0:
            del d["optim"]["correction_weight"]
        if not self.dagger.expert_follows:
            del d["dagger"]["expert_follows"]
        if self.data.push_heel_strike == 0.0:
            del d["data"]["push_heel_strike"]
        if list(self.data.correction_scale) == [1.0, 1.0]:
            del d["data"]["correction_scale"]
        if not self.model.input_gain:
            del d["model"]["input_gain"]
        if self.aux == AuxConfig():
            del d["aux"]
        # Likewise the delta stage's latency keys left at their defaults (off), and run thresholds left unset.
        if all(d["delta"][k] == v for k, v in _LATENCY_DEFAULTS.items()):
            for k in _LATENCY_DEFAULTS:
                del d["delta"][k]
        for k in ("run_theta_x", "run_theta_h"):
            if d["delta"][k] < 0.0:
                del d["delta"][k]
        return d

    def full_dict(self) -> dict[str, Any]:
        """Every key of every table (what an override may address)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes).validate()


_LATENCY_DEFAULTS = {
    k: getattr(DeltaConfig(), k)
    for k in ("latency_weight", "latency_budget_us", "latency_clock_mhz", "latency_tau", "latency_tau_grad")
}


def _check(ok: bool, key: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {expected}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` (int, float, str, bool, list[float]); ints pass as floats."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__} {value!r}")
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not a user error


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        full = ", ".join(f"{prefix}{k}" for k in unknown)
        where = f"[{prefix[:-1]}]" if prefix else "the top level"
        raise ConfigError(f"unknown config key(s) {full}; valid keys in {where} are: {', '.join(names)}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name} must be a table ([{prefix}{name}]), got {value!r}")
            kwargs[name] = _build(typing.cast(type, tp), value, f"{prefix}{name}.")  # a hint: a class, not an instance
        else:
            kwargs[name] = _convert(value, tp, f"{prefix}{name}")
    return cls(**kwargs)


def dataclass_from_dict(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    """A dataclass (and its nested dataclass tables) from TOML-shaped data, with this module's checks: unknown keys
    named in full, values type-checked. For other commands' configs (``legloop rl train``); no range checks."""
    return _build(cls, raw, prefix)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from a (TOML-shaped) dict; raises :class:`ConfigError`."""
    return _build(TrainConfig, raw, "").validate()


def load_toml_config(path: str | Path, from_dict: typing.Callable[[dict[str, Any]], T]) -> T:
    """Read the TOML file ``path`` and build a config with ``from_dict``; every error (missing or unreadable file,
    bad TOML, a bad key) is a :class:`ConfigError` that names the file."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p} is not valid TOML: {exc}") from None
    try:
        return from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def load_config(path: str | Path | None = None) -> TrainConfig:
    """Load and validate a TOML config (None: the default); errors name the file and the key."""
    return load_toml_config(path if path is not None else DEFAULT_CONFIG, config_from_dict)
