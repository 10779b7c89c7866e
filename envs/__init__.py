"""The plant: MJCF model generator, virtual human, sensors, gymnasium env, gait events and stability metrics.

Importing :mod:`envs` registers ``legloop/ProstheticWalker-v0`` with gymnasium by name only (entry point string):
MuJoCo and the env module load when an env is made, or when ``envs.ProstheticWalkerEnv`` (``Push``,
``Randomization``) is first used — exporting weights or replaying a log never pays for them.

:mod:`envs` is the bottom of the import ladder, so it also holds two helpers every layer uses: :mod:`envs.jit`
(compiled kernels with a cache that cannot go stale) and :mod:`envs.files` (atomic, umask-honouring file writes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register, registry

ENV_ID = "legloop/ProstheticWalker-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.walker_env:ProstheticWalkerEnv", max_episode_steps=2000)

if TYPE_CHECKING:
    from envs.walker_env import ProstheticWalkerEnv, Push, Randomization

_LAZY = ("ProstheticWalkerEnv", "Push", "Randomization")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from envs import walker_env

        return getattr(walker_env, name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["ENV_ID", "ProstheticWalkerEnv", "Push", "Randomization"]
