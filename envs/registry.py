"""The env registry behind ``dagmix.envs.make`` and the CLI's ``--task``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dagmix.envs.quadcopter import QuadcopterEnv, QuadcopterEnvCfg
from dagmix.envs.task_configs import check_override
from dagmix.envs.toy import PointMassEnv


def _make_quadcopter(num_envs: int, device: str, seed: int, **overrides: Any) -> QuadcopterEnv:
    names = QuadcopterEnvCfg.field_names()
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise ValueError(f"Unknown quadcopter config key(s) {unknown}; valid keys: {', '.join(names)}.")
    defaults = QuadcopterEnvCfg()
    overrides = {k: check_override(f"env.{k}", v, getattr(defaults, k)) for k, v in overrides.items()}
    cfg = replace(QuadcopterEnvCfg(), **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    return QuadcopterEnv(num_envs, device=device, seed=seed, cfg=cfg)


def _make_point_mass(num_envs: int, device: str, seed: int, **overrides: Any) -> PointMassEnv:
    valid = ("max_episode_length", "noise")
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise ValueError(f"Unknown point_mass config key(s) {unknown}; valid keys: {', '.join(valid)}.")
    defaults = {"max_episode_length": 1, "noise": 0.0}  # the types of PointMassEnv's arguments
    overrides = {k: check_override(f"env.{k}", v, defaults[k]) for k, v in overrides.items()}
    return PointMassEnv(num_envs=num_envs, device=device, seed=seed, **overrides)


_TASKS: dict[str, Callable[..., Any]] = {"quadcopter": _make_quadcopter, "point_mass": _make_point_mass}


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
