"""PPO on the prosthetic walker with plain Gymnasium + Stable-Baselines3 — no legloop command line.

    python examples/sb3_ppo.py                 # 20 k steps of residual PPO on the PD, then one deterministic walk
    python examples/sb3_ppo.py --raw           # the bare env: the policy outputs the torques itself (it falls)
    python examples/sb3_ppo.py --steps 200000

The env is ``legloop/ProstheticWalker-v0`` (registered by ``import envs``): 7 prosthesis sensors in, knee and ankle
torque / peak out. ``ResidualPDEnv`` wraps it so the action is a bounded correction of the AMPRO PD's torque — the
PD walks on its own, a zero action is the PD. `legloop rl train` does the same with vectorised envs, VecNormalize,
domain randomisation, pushes, checkpoints and TensorBoard (experiments/configs/rl.toml).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from gymnasium.wrappers import NormalizeObservation
from stable_baselines3 import PPO

import envs  # noqa: F401 - registers legloop/ProstheticWalker-v0
from controllers.residual import ResidualPDEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000, help="training env steps")
    parser.add_argument("--raw", action="store_true", help="train on the bare env (no PD underneath)")
    args = parser.parse_args()

    env = gym.make("legloop/ProstheticWalker-v0", randomize=True, sensor_noise=True)
    if not args.raw:
        env = ResidualPDEnv(env)  # torque = PD torque + 0.25 × peak × action
    # Sensors span rad to hundreds of N: normalise them (running statistics, frozen for the test walk below).
    env = NormalizeObservation(env)
    # gamma 0.995 looks ~1 s ahead at 200 Hz (a stride); gSDE explores smoothly.
    model = PPO("MlpPolicy", env, gamma=0.995, use_sde=True, sde_sample_freq=8, seed=0, device="cpu", verbose=1)
    model.learn(total_timesteps=args.steps)
    model.save("ppo_walker")

    env.update_running_mean = False
    obs, info = env.reset(seed=123)
    terminated = truncated = False
    steps = 0
    while not (terminated or truncated):  # the TimeLimit ends it after 10 s at 200 Hz
        action, _ = model.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        steps += 1
    print(f"walked {steps / 200:.1f} s, x = {info['x_position']:.2f} m, fell: {terminated}")


if __name__ == "__main__":
    main()
