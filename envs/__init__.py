"""Built-in batched environments (rsl_rl VecEnv) and their registry."""

from dagmix.envs.cue_doors import CueDoorsEnv, CueDoorsEnvCfg
from dagmix.envs.quadcopter import QuadcopterEnv, QuadcopterEnvCfg
from dagmix.envs.registry import list_tasks, make
from dagmix.envs.toy import PointMassEnv

__all__ = ["CueDoorsEnv", "CueDoorsEnvCfg", "PointMassEnv", "QuadcopterEnv", "QuadcopterEnvCfg", "list_tasks", "make"]
