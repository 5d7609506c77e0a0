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

from dagmix.mixing.options import LR_SCHEDULES, LearningRateScheduleConfig

__all__ = ["LR_SCHEDULES", "LearningRateScheduleConfig"]
