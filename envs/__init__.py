"""Built-in batched environments (rsl_rl VecEnv)."""

from dagmix.envs.toy import PointMassEnv

__all__ = ["PointMassEnv"]
