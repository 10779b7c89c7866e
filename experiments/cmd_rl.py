"""`legloop rl`: reinforcement learning of a residual controller on top of the PD, with Stable-Baselines3.

    legloop rl train [--config RL.toml] --out DIR [--force] [--quiet] [--set KEY=VALUE ...]
    legloop rl select DIR [--set select.KEY=VALUE ...]
    legloop rl finetune STUDENT --out DIR [--config RL.toml] [--warmup-steps N] [--force] [--quiet] [--set ...]

PPO on the PD + bounded-residual walker (``controllers/residual.py``: the observation, action and reward tables),
vectorised envs, ``VecNormalize``, gSDE exploration, domain randomisation and random pushes; TensorBoard logs in
``DIR/tb``, checkpoints in ``DIR/checkpoints/step_N``, the policy in ``DIR`` (``policy.zip``, ``vecnormalize.pkl``,
``rl.json``), a summary with the wall time and env steps/s in ``DIR/rl_train.json``. Default config:
``experiments/configs/rl.toml``. Evaluate with ``legloop eval --controller rl --checkpoint DIR``.

At the end of training (``[select]``) and with ``legloop rl select DIR`` (again, or on a run trained without it):
every checkpoint runs push trials and unpushed walks on held-out seeds, and the one that survives the largest pushes
while tracking within 1.25× the PD's and staying under the PD's peak torque and torque rate becomes ``DIR``'s policy
(``experiments/rl_select.py``).

``legloop rl finetune``: a distilled student (``legloop train --expert rl:DIR``, a ``controller.pt`` or its run
directory) with its delta-GRU frozen, its output layer trained by PPO in closed loop as a linear policy on the GRU's
hidden state — for push survival within the tracking and torque bars rather than for the expert's labels; the result
is a student checkpoint in ``DIR`` (``experiments/rl_finetune.py``). Default config:
``experiments/configs/rl_finetune.toml``.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from typing import Any

from experiments.cli import CliError, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "rl", help="reinforcement learning (SB3 PPO) of a residual controller on the PD", description=__doc__
    )
    rl_sub = p.add_subparsers(dest="rl_command", metavar="RL_COMMAND", required=True, parser_class=type(p))
    t = rl_sub.add_parser("train", help="train a residual PPO policy into DIR", description=__doc__)
    _add_run_options(t, "rl.toml", "--set total_timesteps=50000 --set ppo.n_steps=256")
    t.set_defaults(func=run_train)
    s = rl_sub.add_parser(
        "select",
        help="make DIR's policy the checkpoint that survives the largest pushes within the PD's limits",
        description=__doc__,
    )
    s.add_argument("run", metavar="DIR", help="a `legloop rl train` run directory")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the run's config, e.g. --set select.seeds=[100,101,102]")  # fmt: skip
    s.add_argument("--quiet", action="store_true", help="no per-checkpoint lines")
    s.set_defaults(func=run_select)
    f = rl_sub.add_parser(
        "finetune",
        help="train a distilled student's output layer by PPO in closed loop (its GRU frozen) into DIR",
        description=__doc__,
    )
    f.add_argument("student", metavar="STUDENT", help="a distilled pd_residual student: a run directory or a .pt")
    _add_run_options(f, "rl_finetune.toml", "--set total_timesteps=100000")
    f.add_argument(
        "--warmup-steps",
        type=int,
        default=20_480,  # experiments.rl_finetune.DEFAULT_WARMUP_STEPS (not imported here: it pulls in torch)
        help="env steps that train the critic alone before the output layer moves",
    )
    f.set_defaults(func=run_finetune)


def _add_run_options(p: argparse.ArgumentParser, default_config: str, set_example: str) -> None:
    """``--config``, ``--out``, ``--force``, ``--quiet`` and ``--set`` of a command that trains into a run directory."""
    p.add_argument("--config", default=None, help=f"RL config TOML (default: experiments/configs/{default_config})")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--force", action="store_true", help="replace an existing run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key (TOML value, dotted key), e.g. {set_example}",
    )


def _apply_overrides(raw: dict[str, Any], sets: list[str]) -> None:
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CliError(f"--set takes KEY=VALUE (e.g. total_timesteps=50000), got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare word: a string (e.g. vec_env=subproc)
        *tables, last = key.strip().split(".")
        node = raw
        for t in tables:
            node = node.setdefault(t, {})
            if not isinstance(node, dict):
                raise CliError(f"--set {key}: {t} is not a table")
        node[last] = parsed


def _load_config(path: str, sets: list[str]) -> tuple[Any, str]:
    """The RL config at ``path`` with ``--set`` overrides, and the text to copy into the run (overrides noted)."""
    from experiments.rl_config import rl_config_from_dict
    from experiments.train_config import ConfigError

    try:
        text = open(path, encoding="utf-8").read()  # read once: the same text is parsed and copied
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise CliError(f"bad --config: config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"bad --config: {path}: {exc}") from None
    _apply_overrides(raw, sets)
    try:
        cfg = rl_config_from_dict(raw)
    except ConfigError as exc:
        raise CliError(f"bad --config: {path}: {exc}") from None
    if sets:
        text += "\n# --set overrides of the command line\n" + "".join(f"# {s}\n" for s in sets)
    return cfg, text


def run_train(args: argparse.Namespace) -> int:
    from experiments.rl_config import DEFAULT_RL_CONFIG
    from experiments.rl_train import RLTrainError, summary_line, train_rl

    cfg, text = _load_config(args.config or str(DEFAULT_RL_CONFIG), args.set)
    print(
        f"legloop rl train: PPO, {cfg.total_timesteps:,} steps, {cfg.n_envs} envs ({cfg.vec_env}), seed {cfg.seed}",
        file=sys.stderr,
    )
    try:
        res = train_rl(cfg, args.out, config_text=text, force=args.force, progress=not args.quiet)
    except RLTrainError as exc:
        raise CliError(str(exc)) from None
    s = res.summary
    print(summary_line(s))
    print(
        f"trained {s['timesteps']:,} steps in {s['wall_s']:.0f} s ({s['steps_per_s']:.0f} env steps/s); "
        f"{s['falls']}/{s['episodes']} training episodes fell; wrote {res.out}"
    )
    return 0


def run_select(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from experiments.rl_config import rl_config_from_dict
    from experiments.rl_select import select_checkpoint
    from experiments.train_config import ConfigError

    run = Path(args.run)
    try:
        raw = json.loads((run / "rl_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{run} is not a `legloop rl train` run directory (rl_config.json: {exc})") from None
    _apply_overrides(raw, args.set)
    try:
        cfg = rl_config_from_dict(raw)
    except ConfigError as exc:
        raise CliError(f"bad --set or {run / 'rl_config.json'}: {exc}") from None
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    try:
        sel = select_checkpoint(run, cfg.select, cfg.env.control_hz, progress=log)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    base = sel["baseline_pd"]
    print(
        f"selected step {sel['step']}: mean largest push survived {sel['score_n']:.0f} N"
        + (f" (the PD alone: {base['score_n']:.0f} N)" if base else "")
        + ("" if sel["within_limits"] else "; NO checkpoint was within the tracking and torque limits")
        + _confirm_text(sel.get("confirm"))
        + f"; {sel['wall_s']:.0f} s; wrote {run}"
    )
    return 0


def _confirm_text(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    lim = c["limits"]
    return (f"; on the confirmation seeds {c['score_n']:.0f} N (the PD: {c['baseline_pd']['score_n']:.0f} N, larger / "
            f"smaller {c['larger']}/{c['smaller']}, sign test p = {c['sign_test_p']:.2g}"
            + ("" if lim is None else ", within limits" if lim["within"] else ", OUTSIDE limits") + ")")  # fmt: skip


def run_finetune(args: argparse.Namespace) -> int:
    from experiments.rl_config import CONFIG_DIR
    from experiments.rl_finetune import FinetuneError, finetune_student, print_summary

    cfg, text = _load_config(args.config or str(CONFIG_DIR / "rl_finetune.toml"), args.set)
    warmup = args.warmup_steps
    print(
        f"legloop rl finetune: PPO on the output layer of {args.student}, {cfg.total_timesteps:,} steps "
        f"({warmup:,} critic-only), {cfg.n_envs} envs ({cfg.vec_env}), seed {cfg.seed}",
        file=sys.stderr,
    )
    try:
        res = finetune_student(
            args.student, cfg, args.out, warmup_steps=warmup, config_text=text, force=args.force,
            progress=not args.quiet,
        )  # fmt: skip
    except FinetuneError as exc:
        raise CliError(str(exc)) from None
    print_summary(res.summary, res.out)
    return 0
