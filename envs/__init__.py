"""The plant: MJCF model generator, virtual human, sensors, gymnasium env, gait events and stability metrics.

Importing :mod:`envs` registers ``legloop/ProstheticWalker-v0`` with gymnasium.
"""

from gymnasium.envs.registration import register, registry

from envs.walker_env import ProstheticWalkerEnv, Push, Randomization

ENV_ID = "legloop/ProstheticWalker-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.walker_env:ProstheticWalkerEnv", max_episode_steps=2000)

__all__ = ["ENV_ID", "ProstheticWalkerEnv", "Push", "Randomization"]
