"""Who-drove-aware loss weighting and bounded dataset aggregation: the algorithm config's optional sections.

Both are off by default. In the algorithm config::

    "loss_weighting": {"student_driven": 2.0, "teacher_driven": 1.0, "drop_teacher_driven_after": 300,
                       "failed_episode": 0.5},
    "replay": {"iterations": 10, "ratio": 0.5, "max_memory_gb": 2.0},
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


def _parse(cls: type, section: str, cfg: Mapping[str, Any] | Any | None) -> Any:
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{section} must be a dict, got {type(cfg).__name__}: {cfg!r}.")
    valid = [f.name for f in fields(cls)]
    for key in cfg:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown key {key!r} in {section}; valid keys: {', '.join(valid)}.{hint}")
    return cls(**cfg)


def _weight(section: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{section}.{name}={value!r} must be a finite number >= 0.")
    return float(value)


@dataclass
class LossWeighting:
    """Per-sample weights of the behaviour loss by who drove and by the episode's outcome.

    The loss of one gradient step becomes sum(w * loss_i) / sum(w) over its samples (with all weights 1 it is
    rsl_rl's mean). Outcome weighting uses only outcomes known within the stored rollout: a transition whose
    episode ended (within the same rollout) by termination rather than by time-out gets ``failed_episode``;
    transitions of episodes still running at the end of the rollout keep weight 1, since their outcome is not
    known yet. It needs ``extras["time_outs"]`` from the env (rsl_rl's convention).
    """

    teacher_driven: float = 1.0
    """Weight of samples where the teacher drove."""
    student_driven: float = 1.0
    """Weight of samples where the student drove."""
    drop_teacher_driven_after: int | None = None
    """From this iteration on, teacher-driven samples get weight 0 (None: never)."""
    failed_episode: float = 1.0
    """Extra factor for samples of episodes that ended by termination (e.g. a crash) within the rollout."""

    def __post_init__(self) -> None:
        """Validate the values (errors name the key)."""
        self.teacher_driven = _weight("loss_weighting", "teacher_driven", self.teacher_driven)
        self.student_driven = _weight("loss_weighting", "student_driven", self.student_driven)
        self.failed_episode = _weight("loss_weighting", "failed_episode", self.failed_episode)
        d = self.drop_teacher_driven_after
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise ValueError(f"loss_weighting.drop_teacher_driven_after={d!r} must be an int >= 0 or None.")
        if self.teacher_driven == 0 and self.student_driven == 0:
            raise ValueError("loss_weighting: teacher_driven and student_driven are both 0; nothing would be learned.")

    @property
    def active(self) -> bool:
        """Whether any weight differs from the plain mean."""
        return (
            self.teacher_driven != 1.0
            or self.student_driven != 1.0
            or self.drop_teacher_driven_after is not None
            or self.failed_episode != 1.0
        )

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | LossWeighting | None) -> LossWeighting:
        """Parse the ``loss_weighting`` section (unknown keys raise with a suggestion)."""
        return _parse(cls, "loss_weighting", cfg)


@dataclass
class ReplayConfig:
    """Bounded DAgger-style aggregation: replay the last ``iterations`` rollouts' (observation, teacher action)."""

    iterations: int = 0
    """Rollouts kept (0: off). Memory: iterations x num_steps_per_env x num_envs x (student obs + actions) floats."""
    ratio: float = 0.5
    """Replayed samples per update, as a fraction of the update's on-policy samples (extra gradient steps)."""
    max_memory_gb: float | None = None
    """Refuse to start if the buffer needs more than this (GiB); it is always checked against free memory."""

    def __post_init__(self) -> None:
        """Validate the values (errors name the key)."""
        it = self.iterations
        if isinstance(it, bool) or not isinstance(it, int) or it < 0:
            raise ValueError(f"replay.iterations={it!r} must be an int >= 0 (0 turns replay off).")
        r = self.ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise ValueError(f"replay.ratio={r!r} must be a number > 0.")
        m = self.max_memory_gb
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0):
            raise ValueError(f"replay.max_memory_gb={m!r} must be a number > 0 or None.")

    @property
    def active(self) -> bool:
        """Whether replay is on."""
        return self.iterations > 0

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | ReplayConfig | None) -> ReplayConfig:
        """Parse the ``replay`` section (unknown keys raise with a suggestion)."""
        return _parse(cls, "replay", cfg)
