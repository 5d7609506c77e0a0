"""Learning-rate schedule of MixingDistillation: a pure function of the runner's iteration (flat algorithm keys).

In the algorithm config::

    "learning_rate": 2e-3,
    "learning_rate_schedule": "cosine",   # "constant" (default) | "linear" | "cosine"
    "min_learning_rate": 1e-5,
    "warmup_iterations": 10,
    "learning_rate_iterations": None,    # None: the end of the current learn() call

The learning rate of iteration ``it`` (the runner's 0-based iteration), with ``base = learning_rate``,
``W = warmup_iterations`` and ``E`` the end iteration:

- ``it < W``: ``base * (it + 1) / W`` (linear warmup, for every schedule);
- ``constant``: ``base``;
- ``linear``: ``base + (min - base) * p``, ``cosine``: ``min + (base - min) * (1 + cos(pi * p)) / 2``, with
  ``p = clamp((it - W) / (E - W), 0, 1)``: ``base`` at iteration ``W``, ``min_learning_rate`` from ``E`` on.

Being a function of the iteration alone, it continues exactly when a run is resumed at a restored iteration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

LR_SCHEDULES = ("constant", "linear", "cosine")
"""The values of ``learning_rate_schedule``."""


@dataclass
class LearningRateScheduleConfig:
    """The learning-rate schedule keys of the algorithm config (flat keys, named as in the config)."""

    learning_rate_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """``constant`` (default: rsl_rl's fixed learning rate, bit-for-bit), ``linear`` or ``cosine`` decay from
    ``learning_rate`` to ``min_learning_rate`` over the run."""
    min_learning_rate: float = 0.0
    """``linear`` / ``cosine``: the learning rate reached at the end iteration and kept after it (<= learning_rate)."""
    warmup_iterations: int = 0
    """Iterations of linear warmup from ``learning_rate / warmup_iterations`` up to ``learning_rate`` (0: none);
    it applies to every schedule, ``constant`` included."""
    learning_rate_iterations: int | None = None
    """``linear`` / ``cosine``: the runner iteration (0-based, absolute) at which the decay reaches
    ``min_learning_rate``. None (default): the end of the current ``learn()`` call, i.e. its start iteration plus
    its number of iterations (rsl_rl's ``max_iterations`` under the stock runner). To resume a run and continue its
    schedule exactly, resume with the remaining iterations (rsl_rl's convention) or set this key."""

    def __post_init__(self) -> None:
        """Validate the values (errors name the key)."""
        kind = self.learning_rate_schedule
        if kind not in LR_SCHEDULES:
            raise ValueError(f"learning_rate_schedule={kind!r} is not one of {', '.join(map(repr, LR_SCHEDULES))}.")
        m = self.min_learning_rate
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
            raise ValueError(f"min_learning_rate={m!r} must be a finite number >= 0.")
        self.min_learning_rate = float(m)
        w = self.warmup_iterations
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ValueError(f"warmup_iterations={w!r} must be an int >= 0 (0: no warmup).")
        e = self.learning_rate_iterations
        if e is not None and (isinstance(e, bool) or not isinstance(e, int) or e <= w):
            raise ValueError(
                f"learning_rate_iterations={e!r} must be an int > warmup_iterations={w} (the iteration at which "
                "the decay reaches min_learning_rate), or None for the end of the learn() call."
            )

    @property
    def active(self) -> bool:
        """Whether the learning rate ever differs from ``learning_rate`` (False: rsl_rl's behaviour, untouched)."""
        return self.learning_rate_schedule != "constant" or self.warmup_iterations > 0

    @property
    def decays(self) -> bool:
        """Whether the schedule needs an end iteration."""
        return self.learning_rate_schedule != "constant"

    def check_base(self, learning_rate: float) -> float:
        """Return ``learning_rate`` (the base rate) as a float; raise if a decay would go up to min_learning_rate."""
        base = float(learning_rate)
        if self.decays and self.min_learning_rate > base:
            raise ValueError(
                f"min_learning_rate={self.min_learning_rate} is above learning_rate={base}; a "
                f"{self.learning_rate_schedule!r} schedule decays from learning_rate to min_learning_rate."
            )
        return base

    def apply(self, optimizer: Any, base: float, iteration: int, end: int | None) -> float:
        """Set every param group of ``optimizer`` to the learning rate of ``iteration``; return it."""
        lr = self.learning_rate(base, iteration, end)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> LearningRateScheduleConfig:
        """Build from the algorithm config's keys (keys of other features are ignored; None means the default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names and v is not None})

    def end_iteration(self, start: int, length: int | None) -> int | None:
        """Return the iteration at which the decay ends, for a ``learn()`` call of ``length`` iterations from ``start``.

        Raises:
            ValueError: if the schedule decays but neither ``learning_rate_iterations`` nor the run length is known,
                or the end falls within the warmup.
        """
        if not self.decays:
            return None
        if self.learning_rate_iterations is not None:
            return self.learning_rate_iterations
        if length is None:
            raise ValueError(
                f"learning_rate_schedule={self.learning_rate_schedule!r} needs the run length to decay over: set the "
                "algorithm key learning_rate_iterations=N (the iteration at which min_learning_rate is reached), "
                "or the train config's max_iterations."
            )
        end = int(start) + int(length)
        if end <= self.warmup_iterations:
            raise ValueError(
                f"learning_rate_schedule={self.learning_rate_schedule!r}: this run ends at iteration {end}, within "
                f"warmup_iterations={self.warmup_iterations}; lower warmup_iterations or set learning_rate_iterations."
            )
        return end

    def learning_rate(self, base: float, iteration: int, end: int | None) -> float:
        """Return the learning rate of ``iteration`` for the base rate ``base`` and end iteration ``end``."""
        w = self.warmup_iterations
        if iteration < w:
            return base * (iteration + 1) / w
        if not self.decays:
            return base
        if end is None:
            raise ValueError("the end iteration of a decaying learning-rate schedule is not set")
        p = min(max((iteration - w) / (end - w), 0.0), 1.0)
        low = self.min_learning_rate
        if self.learning_rate_schedule == "linear":
            return base + (low - base) * p
        return low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * p))
