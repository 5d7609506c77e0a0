"""The option sections of the algorithm config, as typed dataclasses (no rsl_rl import; see :mod:`.schema`).

- ``loss_weighting``: who-drove-aware loss weights (:class:`LossWeighting`);
- ``replay``: bounded aggregation of past rollouts (:class:`ReplayConfig`);
- the flat learning-rate keys (:class:`LearningRateKeys`, validated by :class:`LearningRateScheduleConfig`);
- ``ema_decay``: weight averaging of the student (:class:`WeightAveragingKeys`, validated by
  :class:`WeightAveragingConfig`, applied by ``dagmix.algorithms.ema``).

The schema (:class:`~dagmix.mixing.schema.AlgorithmSchema`) holds the sections as fields and the flat keys by
inheriting :class:`LearningRateKeys` and :class:`WeightAveragingKeys`: each key is declared once, here.

In the algorithm config::

    "loss_weighting": {"student_driven": 2.0, "teacher_driven": 1.0, "drop_teacher_driven_after": 300,
                       "failed_episode": 0.5},
    "replay": {"iterations": 10, "ratio": 0.5, "max_memory_gb": 2.0},
    "learning_rate_schedule": "cosine", "min_learning_rate": 1e-5, "warmup_iterations": 10,
    "ema_decay": 0.99,
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from dagmix.mixing.names import check_keys, not_one_of


def _parse(cls: type, section: str, cfg: Mapping[str, Any] | Any | None) -> Any:
    """Return ``cls`` built from a section dict (None: the defaults); unknown keys raise with a suggestion."""
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{section} must be a dict, got {type(cfg).__name__}: {cfg!r}.")
    check_keys(section, cfg, [f.name for f in fields(cls)])
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
    """Bounded DAgger-style aggregation: replay the last ``iterations`` rollouts' (observation, teacher action).

    rsl-rl-lib >= 4. A non-recurrent student replays single transitions. A recurrent student (rsl_rl's ``RNNModel``,
    GRU or LSTM) replays sequences: the buffer also keeps the dones and the hidden state the student had at every
    rollout step, and each replay gradient step runs ``num_envs`` chunks of ``gradient_length`` consecutive steps
    (random stored rollout, env and start step) from the hidden state recorded at the chunk's start (stale by the
    updates since, but close), resetting it at dones as rsl_rl's update does. The buffer's size is printed when it is
    created (``[dagmix] aggregation replay: ...``); the replay loss is logged as ``Distillation/replay_loss``. The
    buffer is not saved in checkpoints: a resumed run starts with an empty one.
    """

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


LearningRateScheduleName = Literal["constant", "linear", "cosine"]
LR_SCHEDULES: tuple[str, ...] = get_args(LearningRateScheduleName)
"""The values of ``learning_rate_schedule``."""


@dataclass
class LearningRateKeys:
    """The learning-rate schedule of MixingDistillation's student: flat keys of the algorithm config.

    The rate of the runner's iteration ``it`` (0-based; set on the optimizer at the start of each update and logged
    as ``Distillation/learning_rate``), with ``W = warmup_iterations``, ``E`` the end iteration and ``min =
    min_learning_rate``: ``learning_rate * (it + 1) / W`` while ``it < W``; then ``constant`` keeps
    ``learning_rate``, and with ``p = clamp((it - W) / (E - W), 0, 1)`` ``linear`` is ``learning_rate + (min -
    learning_rate) * p`` and ``cosine`` is ``min + (learning_rate - min) * (1 + cos(pi * p)) / 2``, so the rate is
    ``min`` from ``E`` on. A decaying schedule whose end is not known (neither ``learning_rate_iterations`` nor the
    run length) is an error when ``learn()`` starts (rsl-rl-lib 3.x's stock runner does not pass the run length: set
    ``learning_rate_iterations`` there). The rate is a function of the iteration only, so a resumed run continues
    the schedule exactly.
    """

    learning_rate_schedule: LearningRateScheduleName = "constant"
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
    learning_rate_decay_start_fraction: float = 0.0
    """``linear`` / ``cosine``: the fraction of the span from the end of the warmup to the end iteration during which
    the rate holds at ``learning_rate`` before it decays, in [0, 1) (0, default: the decay starts at once; 2/3: it
    runs over the last third)."""


@dataclass
class LearningRateScheduleConfig(LearningRateKeys):
    """The validated learning-rate keys, and the rate they give each iteration (:meth:`apply`)."""

    def __post_init__(self) -> None:
        """Validate the values (errors name the key)."""
        kind = self.learning_rate_schedule
        if kind not in LR_SCHEDULES:
            raise ValueError(not_one_of("learning_rate_schedule", kind, LR_SCHEDULES))
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
        f = self.learning_rate_decay_start_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= f < 1.0:
            raise ValueError(
                f"learning_rate_decay_start_fraction={f!r} must be a number in [0, 1): the fraction of the schedule "
                "during which the rate holds before it decays (0: decay at once; 2/3: over the last third)."
            )
        self.learning_rate_decay_start_fraction = float(f)

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
        start = w + self.learning_rate_decay_start_fraction * (end - w)
        p = min(max((iteration - start) / (end - start), 0.0), 1.0)
        low = self.min_learning_rate
        if self.learning_rate_schedule == "linear":
            return base + (low - base) * p
        return low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * p))


@dataclass
class WeightAveragingKeys:
    """Weight averaging of MixingDistillation's student: a flat key of the algorithm config (rsl-rl-lib >= 4).

    After every optimizer step of the student (rsl_rl's and replay's), ``avg <- ema_decay * avg + (1 - ema_decay) *
    raw`` for every parameter and floating-point buffer (the observation normalizer's running mean and std; its
    count is copied, and its running variance is set to the averaged std squared, so that a run that trains the
    averaged student further, e.g. ``init_student``, continues from the normalizer its forward pass used), on the
    device. The average starts at the student's initial weights and spans about ``1 / (1 -
    ema_decay)`` optimizer steps. Rollouts and gradient steps use the raw weights; ``alg.get_policy()`` and
    ``runner.get_inference_policy()`` return the average (a separate module with its own recurrent hidden state), and
    the checkpoint's ``student_state_dict`` holds it, so stock rsl_rl, ``dagmix eval`` and ``dagmix export`` load
    the averaged student with no dagmix code. The raw weights are kept under
    ``checkpoint["dagmix"]["raw_student_state_dict"]`` (``optimizer_state_dict`` belongs to them), so a resumed run
    restores raw weights, optimizer and average exactly. Resuming such a checkpoint without ``ema_decay`` continues
    from the raw weights (with a warning); resuming a plain checkpoint with ``ema_decay`` starts the average there.
    """

    ema_decay: float | None = None
    """Decay of the exponential moving average of the student's weights and normalizer, in (0, 1), applied after each
    optimizer step; None (default): off. The averaged student is the one saved, evaluated and exported."""


@dataclass
class WeightAveragingConfig(WeightAveragingKeys):
    """The validated weight-averaging key, as ``dagmix.algorithms.ema`` applies it."""

    def __post_init__(self) -> None:
        """Validate the value (errors name the key)."""
        d = self.ema_decay
        if d is not None and (
            isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or not 0.0 < d < 1.0
        ):
            raise ValueError(f"ema_decay={d!r} must be a number in (0, 1) (e.g. 0.99), or None to turn averaging off.")
        if d is not None:
            self.ema_decay = float(d)

    @property
    def active(self) -> bool:
        """Whether weight averaging is on."""
        return self.ema_decay is not None
