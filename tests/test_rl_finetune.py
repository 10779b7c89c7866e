"""`legloop rl finetune`: a distilled student's output layer as a PPO policy on its frozen delta-GRU's hidden state.

The student here is a tiny made ``pd_residual`` delta-GRU (QAT, thresholds, command limits): the head env must apply
the torque the loop's controller applies, and a short run must move only the output layer, and only after the
critic's warm-up.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from controllers.checkpoint import load_checkpoint, save_checkpoint
from controllers.command_limits import CommandLimits
from controllers.student_head import ACTION_BOUND, StudentError, load_student, make_student_head_env
from experiments.cli import main

TINY = """
seed = 1
total_timesteps = 768
n_envs = 2
checkpoint_every = 512

[env]
episode_seconds = 2.0

[ppo]
n_steps = 128
batch_size = 128
n_epochs = 2
learning_rate = 3e-3

[select]
enabled = false
"""


@pytest.fixture(scope="module")
def student(make_module_checkpoint) -> Path:  # type: ignore[no-untyped-def]
    """A 2L-16H QAT ampro_plus student with a small correction (it walks) and its expert's command limits."""
    f = make_module_checkpoint
    model = f.model("ampro_plus", 16, 2, seed=1, gain=1.0, theta_x=0.05, theta_h=0.1, qat=True)
    meta = f.meta(model, "ampro_plus", target_scale=(4.0, 4.0), target_offset=(0.5, -0.5))
    meta.target = "pd_residual"
    meta.command_limits = CommandLimits((100.0, 70.0), (14000.0, 11000.0))
    return save_checkpoint(f.directory / "student.pt", model, meta)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    p.write_text(TINY)
    return p


def _finetune(student: Path, out: Path, config: Path, *extra: str) -> int:
    return main(["rl", "finetune", str(student), "--config", str(config), "--out", str(out), "--quiet", *extra])


def test_head_env_applies_the_torque_of_the_students_controller(student: Path) -> None:
    """Acting with the student's own output layer (``info["student_output"]``), the head env drives the walker with
    the torques `legloop eval --controller deltagru` computes from the same sensors: PD + correction under the
    checkpoint's command limits, step for step."""
    import envs
    from hil.learned import LearnedController

    env = make_student_head_env(student, {"speed": 1.0}, max_episode_steps=400)
    twin = gym.make(envs.ENV_ID, max_episode_steps=400, speed=1.0)
    h, info = env.reset(seed=3)
    obs, _ = twin.reset(seed=3)
    walker = twin.unwrapped
    ctl = LearnedController.from_checkpoint(student, "deltagru", walker=walker.walker)
    assert env.observation_space.shape == (16,) and h.shape == (16,) and np.all(np.abs(h) <= 1.0)
    corrections = []
    for _ in range(300):
        want = ctl.act(obs).copy()
        y = info["student_output"]
        corrections.append(ctl.raw_output.copy())
        h, _, terminated, truncated, info = env.step(y)
        got = env.residual_env.core.out  # type: ignore[union-attr]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        obs, _, term2, _, _ = twin.step(want / walker.peak_torque)
        assert not terminated and not term2 and not truncated
    c = np.array(corrections)
    assert np.ptp(c[:, 0]) > 0.5 and np.ptp(c[:, 1]) > 0.5  # the correction moves: the comparison is not of zeros


def test_head_policy_initialised_from_the_checkpoint_reproduces_it(student: Path) -> None:
    """The output layer as SB3's actor (QAT forward) gives the kernel's y from the env's observation h."""
    from experiments.rl_finetune import QuantHead

    model, _ = load_student(student)
    head = torch.nn.Linear(16, 2)
    head.load_state_dict({"weight": model.fc.weight.detach(), "bias": model.fc.bias.detach()})
    head.__class__ = QuantHead
    env = make_student_head_env(student, {"speed": 1.0}, max_episode_steps=400)
    h, info = env.reset(seed=5)
    for _ in range(50):
        with torch.no_grad():
            y = head(torch.as_tensor(h)).numpy()
        np.testing.assert_allclose(y, info["student_output"], rtol=0, atol=1e-5)
        h, *_, info = env.step(y)


def test_short_finetune_moves_only_the_output_layer(student: Path, tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "ft"
    assert _finetune(student, out, tiny_config, "--warmup-steps", "256") == 0
    before, _ = load_checkpoint(student)
    after, meta = load_checkpoint(out / "controller.pt")
    sb, sa = before.state_dict(), after.state_dict()
    for k in sb:
        if k.startswith("fc."):
            assert not torch.equal(sb[k], sa[k]), k  # trained after the warm-up
        else:
            assert torch.equal(sb[k], sa[k]), k  # the GRU is frozen
    assert (meta.target, meta.command_limits, meta.feature_set) == (
        "pd_residual", CommandLimits((100.0, 70.0), (14000.0, 11000.0)), "ampro_plus"
    )  # fmt: skip
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["timesteps"] == 768 and summary["warmup_steps"] == 256 and summary["steps_per_s"] > 0
    assert meta.training["finetune"]["student_sha256"] == summary["student_sha256"]
    assert (out / "checkpoints" / "step_512" / "controller.pt").is_file()
    assert (out / "rl_config.toml").is_file() and (out / "tb").is_dir()
    # the result runs as any student does
    assert main(["eval", "--controller", "deltagru", "--checkpoint", str(out), "--seconds", "1", "--seeds", "0",
                 "--no-pushes", "--no-log", "--out", str(tmp_path / "ev")]) == 0  # fmt: skip


def test_warmup_trains_the_critic_alone(student: Path, tmp_path: Path, tiny_config: Path) -> None:
    """With the warm-up as long as the run the output layer does not move at all."""
    out = tmp_path / "ft"
    assert _finetune(student, out, tiny_config, "--warmup-steps", "10000") == 0
    before, _ = load_checkpoint(student)
    after, _ = load_checkpoint(out / "controller.pt")
    assert torch.equal(before.fc.weight, after.fc.weight) and torch.equal(before.fc.bias, after.fc.bias)
    assert json.loads((out / "finetune.json").read_text())["head"]["effective_weights_changed"] == 0


def test_finetune_refusals(
    student: Path, make_checkpoint, tmp_path: Path, tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    torque_net = make_checkpoint("torque.pt", feature_set="ampro_plus")
    assert _finetune(torque_net, tmp_path / "a", tiny_config) == 2
    assert "target 'torque'" in capsys.readouterr().err and not (tmp_path / "a").exists()
    with pytest.raises(StudentError, match="pd_residual"):
        load_student(torque_net)
    assert _finetune(student, tmp_path / "b", tiny_config, "--warmup-steps", "-1") == 2
    assert "--warmup-steps must be >= 0" in capsys.readouterr().err
    taken = tmp_path / "c"
    taken.mkdir()
    (taken / "controller.pt").write_bytes(b"mine")
    assert _finetune(student, taken, tiny_config) == 2
    assert "already exists" in capsys.readouterr().err and (taken / "controller.pt").read_bytes() == b"mine"


def test_residual_reward_is_the_same_per_newton_metre() -> None:
    """The expert's residual penalty weighs its action (correction / (scale × peak)); the head's action is correction
    / peak, so the weight grows by 1 / scale²."""
    from experiments.rl_config import rl_config_from_dict
    from experiments.rl_finetune import head_weights

    cfg = rl_config_from_dict({"residual": {"scale": 0.25}, "reward": {"residual": 0.1}})
    assert head_weights(cfg).residual == pytest.approx(1.6)
    assert head_weights(cfg).tracking == cfg.reward.weights().tracking
    assert ACTION_BOUND >= 10.0


def test_cli_default_warmup_is_the_modules() -> None:
    import argparse

    from experiments import cmd_rl
    from experiments.rl_finetune import DEFAULT_WARMUP_STEPS

    parser = argparse.ArgumentParser()
    cmd_rl.register(parser.add_subparsers())
    assert parser.parse_args(["rl", "finetune", "S", "--out", "D"]).warmup_steps == DEFAULT_WARMUP_STEPS


def _flat(cfg: dict, prefix: str = "") -> dict:  # type: ignore[type-arg]
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_r2_recipe_is_the_distillation_default_but_for_its_own_keys() -> None:
    """experiments/configs/train_distil_r2.toml (benchmarks/remake_l10_student.sh): a changed distillation default
    shows here, not as a different student."""
    from experiments.train_config import CONFIG_DIR, load_config

    r2 = _flat(load_config(CONFIG_DIR / "train_distil_r2.toml").to_dict())
    default = _flat(load_config(CONFIG_DIR / "train_distil.toml").to_dict())
    assert {k for k in r2 if r2[k] != default.get(k)} | {k for k in default if k not in r2} == {
        "data.episodes", "data.max_slope_deg", "dagger.episodes", "dagger.expert_follows"
    }  # fmt: skip
    assert (r2["data.episodes"], r2["data.max_slope_deg"], r2["dagger.episodes"]) == (48, 3.0, 16)


def test_the_finetune_config_is_the_rl_default_but_for_its_own_keys() -> None:
    """experiments/configs/rl_finetune.toml: the RL experts' reward and pushes but for the keys it names."""
    from experiments.rl_config import DEFAULT_RL_CONFIG, load_rl_config

    ft = _flat(load_rl_config(DEFAULT_RL_CONFIG.parent / "rl_finetune.toml").to_dict())
    default = _flat(load_rl_config().to_dict())
    assert {k for k in ft if ft[k] != default[k]} == {
        "total_timesteps", "checkpoint_every", "reward.tracking", "reward.tracking_pushed", "reward.tracking_knee",
        "ppo.learning_rate", "ppo.lr_schedule", "ppo.log_std_init", "normalize.norm_obs", "select.enabled",
        "pushes.curriculum_start_n",
    }  # fmt: skip
    assert (ft["reward.tracking"], ft["reward.tracking_knee"]) == (2 * default["reward.tracking"], 40.0)
