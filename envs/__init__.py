"""The plant: MJCF model generator, virtual human, sensors, gymnasium env, gait events and stability metrics.

Importing :mod:`envs` registers ``legloop/ProstheticWalker-v0`` with gymnasium. The simulator itself (MuJoCo, the
compiled kernels) loads on first use of :class:`ProstheticWalkerEnv`, :class:`Push` or :class:`Randomization`, so
the packages above that only need a small helper from envs (e.g. :mod:`envs.files`) do not pay for it.
"""

from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register, registry

if TYPE_CHECKING:
    from envs.walker_env import ProstheticWalkerEnv, Push, Randomization

ENV_ID = "legloop/ProstheticWalker-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.walker_env:ProstheticWalkerEnv", max_episode_steps=2000)

__all__ = ["ENV_ID", "ProstheticWalkerEnv", "Push", "Randomization"]


def __getattr__(name: str) -> Any:
    if name in ("ProstheticWalkerEnv", "Push", "Randomization"):
        from envs import walker_env

        return getattr(walker_env, name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
