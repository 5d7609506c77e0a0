"""The env registry behind ``dagmix.envs.make`` and the CLI's ``--task``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from functools import partial
from typing import Any

from dagmix.envs.cue_doors import CueDoorsEnv, CueDoorsEnvCfg
from dagmix.envs.quadcopter import QuadcopterEnv, QuadcopterEnvCfg
from dagmix.envs.quadcopter_experts import QuadcopterExpertsEnv, QuadcopterExpertsEnvCfg
from dagmix.envs.toy import PointMassEnv
from dagmix.mixing.overrides import check_override

THROWN_QUADCOPTER = {
    "spawn_height": 1.0,
    "spawn_tilt": 1.2,
    "spawn_lin_vel": 1.5,
    "spawn_ang_vel": 6.0,
    "velocity_noise": None,
}
"""``quadcopter_thrown``: the quadcopter started as if thrown: tilted up to 1.2 rad (69 degrees) about a random
horizontal axis, moving at up to 1.5 m/s and spinning at up to 6 rad/s per axis, 1 m up. It needs an immediate
recovery: with zero actions its episodes last 36 steps on average (91 from the level start), of 500. Its student
has no velocity estimate (``velocity_noise=None``), as when its results were made (benchmarks/RESULTS.md)."""

BLIND_QUADCOPTER = {"velocity_noise": None}
"""``quadcopter_blind``: the quadcopter whose student has no velocity estimate (13 observations), an imitation-gap
task: every distillation setting stops near 0.97 of the teacher's return, success 0.82-0.93 (benchmarks/RESULTS.md,
"What limits the student"). The teacher's observations are the quadcopter's, so it uses the quadcopter's teacher."""

EXPERTS_QUADCOPTER = {k: v for k, v in THROWN_QUADCOPTER.items() if k != "velocity_noise"}
"""``quadcopter_experts``: the built-in multi-expert example (``dagmix.envs.quadcopter_experts``): the even envs
start level (expert 0, the ``quadcopter`` teacher's start), the odd ones thrown as ``quadcopter_thrown`` (expert 1,
its teacher's start); ``expert_id`` says which. The student observes its velocity estimate, as on ``quadcopter``."""

QUADCOPTER_PRESETS: dict[str, dict[str, Any]] = {
    "quadcopter": {},
    "quadcopter_thrown": THROWN_QUADCOPTER,
    "quadcopter_blind": BLIND_QUADCOPTER,
    "quadcopter_experts": EXPERTS_QUADCOPTER,
}
"""The quadcopter tasks: each one's defaults on top of ``QuadcopterEnvCfg`` (env overrides go on top of them)."""


_ENV_CLASSES: dict[str, tuple[type, type]] = {
    "quadcopter_experts": (QuadcopterExpertsEnvCfg, QuadcopterExpertsEnv),
    "cue_doors": (CueDoorsEnvCfg, CueDoorsEnv),
}
"""The tasks with their own config and env class (the other quadcopter tasks: ``QuadcopterEnvCfg``,
``QuadcopterEnv``)."""


def _make_cfg_env(task: str, num_envs: int, device: str, seed: int, **overrides: Any) -> Any:
    """Build a task whose env takes a dataclass config: its preset, then the overrides (each checked)."""
    cfg_cls, env_cls = _ENV_CLASSES.get(task, (QuadcopterEnvCfg, QuadcopterEnv))
    names = [f.name for f in fields(cfg_cls)]
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise ValueError(f"Unknown {task} config key(s) {unknown}; valid keys: {', '.join(names)}.")
    defaults = replace(cfg_cls(), **QUADCOPTER_PRESETS.get(task, {}))
    overrides = {k: check_override(f"env.{k}", v, getattr(defaults, k)) for k, v in overrides.items()}
    cfg = replace(defaults, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    return env_cls(num_envs, device=device, seed=seed, cfg=cfg)


def _make_point_mass(num_envs: int, device: str, seed: int, **overrides: Any) -> PointMassEnv:
    valid = ("max_episode_length", "noise")
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise ValueError(f"Unknown point_mass config key(s) {unknown}; valid keys: {', '.join(valid)}.")
    defaults = {"max_episode_length": 1, "noise": 0.0}  # the types of PointMassEnv's arguments
    overrides = {k: check_override(f"env.{k}", v, defaults[k]) for k, v in overrides.items()}
    return PointMassEnv(num_envs=num_envs, device=device, seed=seed, **overrides)


_TASKS: dict[str, Callable[..., Any]] = {
    **{task: partial(_make_cfg_env, task) for task in (*QUADCOPTER_PRESETS, "cue_doors")},
    "point_mass": _make_point_mass,
}


def list_tasks() -> list[str]:
    """Return the names ``make`` accepts."""
    return list(_TASKS)


def make(task: str, num_envs: int, device: str = "cpu", seed: int = 0, **overrides: Any) -> Any:
    """Create a built-in rsl_rl VecEnv by name; ``overrides`` set fields of its config.

    Raises:
        ValueError: unknown task (listing the known ones) or unknown config key (naming it).
    """
    if task not in _TASKS:
        raise ValueError(f"Unknown task {task!r}; known tasks: {', '.join(_TASKS)}.")
    return _TASKS[task](num_envs, device, seed, **overrides)
