"""Loss-coefficient schedules: a number, or a [0, 1] beta schedule scaled by ``scale`` (torch-free)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dagmix.mixing.adaptive import AdaptiveSchedule
from dagmix.mixing.config import PRESETS, SCHEDULE_KINDS, build_schedule
from dagmix.mixing.schedules import BetaSchedule, ConstantSchedule


def _check_scale(section: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{section}={value!r} must be a finite number >= 0 (or a schedule dict).")
    return float(value)


class CoefficientSchedule:
    """A loss coefficient per learning iteration: ``scale * schedule.beta(iteration)``, always >= 0.

    The shape comes from any non-adaptive beta schedule kind or preset (``constant``, ``step``, ``linear``,
    ``exponential``, ``cosine``, ``piecewise_linear``, ``two_stage``, ...), whose values lie in [0, 1]; ``scale``
    (default 1) stretches them to coefficients above 1. A plain number is a constant coefficient.

    Examples::

        2.0                                                      # 2.0 at every iteration
        {"schedule": "two_stage", "phase1_iterations": 100}      # 1.0 before iteration 100, then 0.0
        {"schedule": "linear", "start": 0.0, "end": 1.0, "iterations": 200, "scale": 0.5}  # 0 -> 0.5 over 200 its
    """

    def __init__(self, schedule: BetaSchedule, scale: float = 1.0, section: str = "coefficient") -> None:
        """Args: schedule: the [0, 1] shape; scale: factor >= 0; section: the config key named in errors."""
        if isinstance(schedule, AdaptiveSchedule):
            raise ValueError(
                f"{section}: the adaptive schedule {type(schedule).__name__} is not supported for a loss "
                "coefficient (it reads training signals); use a fixed kind such as 'linear' or 'piecewise_linear'."
            )
        self.schedule = schedule
        self.scale = _check_scale(f"{section}.scale", scale)
        self.section = section

    def value(self, iteration: int) -> float:
        """Return the coefficient at the runner's 0-based ``iteration``."""
        return self.scale * self.schedule.beta(iteration)

    def always_zero(self) -> bool:
        """Whether the coefficient is 0 at every iteration (a scale of 0, or a constant 0)."""
        return self.scale == 0.0 or (isinstance(self.schedule, ConstantSchedule) and self.schedule.value == 0.0)

    def __call__(self, iteration: int) -> float:
        """Alias of :meth:`value`."""
        return self.value(iteration)

    def describe(self) -> str:
        """Return a one-line description, e.g. ``0.5`` or ``2.0 * LinearSchedule(...)``."""
        if isinstance(self.schedule, ConstantSchedule) and self.schedule.value == 1.0:
            return repr(self.scale)
        return self.schedule.describe() if self.scale == 1.0 else f"{self.scale!r} * {self.schedule.describe()}"

    def __repr__(self) -> str:
        return f"CoefficientSchedule({self.describe()})"

    @classmethod
    def from_config(cls, section: str, cfg: float | Mapping[str, Any] | CoefficientSchedule) -> CoefficientSchedule:
        """Parse a coefficient key: a number >= 0, or ``{"schedule": kind, **params, "scale": s}``.

        Args:
            section: The config key (``imitation_coef``, ``ppo_coef``), named in errors.
            cfg: The value from the algorithm config.

        Raises:
            ValueError: a negative or non-finite number, an unknown or adaptive kind, bad schedule parameters.
        """
        if isinstance(cfg, CoefficientSchedule):
            return cfg
        if not isinstance(cfg, Mapping):
            return cls(ConstantSchedule(1.0), _check_scale(section, cfg), section)
        if "schedule" not in cfg:
            raise ValueError(
                f"{section}={dict(cfg)!r} has no 'schedule'; give a number, or a dict such as "
                f"{{'schedule': 'linear', 'start': 1.0, 'end': 0.0, 'iterations': 300, 'scale': 1.0}}."
            )
        params = {k: v for k, v in cfg.items() if k not in ("schedule", "scale")}
        name = cfg["schedule"]
        kind = SCHEDULE_KINDS.get(name) if isinstance(name, str) else None
        if kind is not None and issubclass(kind, AdaptiveSchedule):
            fixed = [k for k, v in SCHEDULE_KINDS.items() if not issubclass(v, AdaptiveSchedule)] + list(PRESETS)
            raise ValueError(
                f"{section}.schedule={name!r} is adaptive (it reads training signals) and not supported for a loss "
                f"coefficient; use one of {', '.join(repr(k) for k in fixed)}."
            )
        schedule = build_schedule(name, section=section, **params)
        return cls(schedule, cfg.get("scale", 1.0), section)
