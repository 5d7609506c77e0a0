"""Adaptive (closed-loop) beta schedules: beta follows what the run measures, once per iteration.

The algorithm calls :meth:`AdaptiveSchedule.observe` at the end of every update with that iteration's signals
(read from the device once, together with the other per-iteration scalars, and summed over ranks in multi-GPU
runs, so every rank takes the same decision). The decision applies from the next iteration on. Signals:

- ``behavior_loss``: mean behaviour loss over all of the iteration's samples;
- ``discrepancy``: normalized teacher-student action discrepancy on student-driven samples,
  E[(a_student - a_teacher)^2] / Var(a_teacher) (nan when no sample was student-driven);
- ``return_ratio``: mean return of episodes the student drove from start to end over that of episodes the
  teacher drove from start to end, over the episodes that ended in the iteration (nan when either is missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dagmix.mixing.schedules import BetaSchedule, check_int, check_unit


def _check_positive(name: str, value: float, kind: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{kind}: {name}={value!r} must be a finite number > 0.")
    return float(value)


class AdaptiveSchedule(BetaSchedule):
    """Base of closed-loop schedules: beta is a decision taken from measured signals, not a function of time.

    ``beta(iteration)`` returns the current decision for the iteration being run (and, after a hard
    ``deadline``, 0). Subclasses implement :meth:`_decide`, which sees one iteration's signals and returns the
    beta for the next iteration.
    """

    signal: str | None = "behavior_loss"

    def __init__(self, initial_beta: float, deadline: int | None) -> None:
        self.initial_beta = check_unit("initial_beta", initial_beta, type(self).__name__)
        self.deadline = None if deadline is None else check_int("deadline", deadline, type(self).__name__, 1)
        self._current = self.initial_beta
        self._last_signal = float("nan")
        self._last_observed = -1
        self._zero_since: int | None = None

    # -------------------------------------------------------------------------------- schedule API
    def _beta(self, iteration: int) -> float:
        if self.deadline is not None and iteration >= self.deadline:
            return 0.0
        return self._current

    def first_zero_iteration(self) -> int | None:
        """Return the iteration from which beta has been 0 so far, else the deadline (None without one)."""
        if self._zero_since is not None:
            return self._zero_since
        return self.deadline

    def observe(self, iteration: int, signals: Mapping[str, float]) -> None:
        """Take the decision for ``iteration + 1`` from ``iteration``'s signals (called once per iteration)."""
        if iteration <= self._last_observed:  # a repeated call for the same iteration changes nothing
            return
        value = float(signals.get(self.signal or "", float("nan")))
        self._last_signal = value
        self._last_observed = iteration
        nxt = iteration + 1
        if self.deadline is not None and nxt >= self.deadline:
            new = 0.0
        else:
            new = min(1.0, max(0.0, float(self._decide(iteration, value))))
        if new > 0.0:
            self._zero_since = None
        elif self._zero_since is None:
            self._zero_since = nxt
        self._current = new

    def _decide(self, iteration: int, value: float) -> float:
        raise NotImplementedError

    def log_scalars(self) -> dict[str, float]:
        """Return the scalars logged each iteration: the signal read and the beta decided for the next one."""
        return {"Distillation/adaptive_signal": self._last_signal, "Distillation/adaptive_next_beta": self._current}

    # -------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Return the decision state (restored on resume so a resumed run continues the same decisions)."""
        return {
            "current": self._current,
            "last_signal": self._last_signal,
            "last_observed": self._last_observed,
            "zero_since": self._zero_since,
            **self._extra_state(),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        missing = {"current", "last_signal", "last_observed", "zero_since"} - set(state)
        if missing:
            raise ValueError(f"{type(self).__name__} state lacks {sorted(missing)}.")
        self._current = float(state["current"])
        self._last_signal = float(state["last_signal"])
        self._last_observed = int(state["last_observed"])
        self._zero_since = state["zero_since"]
        self._load_extra(state)

    def _load_extra(self, state: dict[str, Any]) -> None:
        pass


class LossTriggeredSchedule(AdaptiveSchedule):
    """Lower beta once the behaviour loss has stayed below ``threshold`` for ``patience`` consecutive iterations.

    Starts at ``initial_beta`` (1: the teacher drives). Each trigger lowers beta by ``step`` (default: all the way
    to 0, i.e. a loss-triggered two-stage switch) and restarts the count. With ``switch_back_threshold`` (must be
    above ``threshold``: hysteresis), a loss above it raises beta back by one step (to at most ``initial_beta``).
    At ``deadline`` beta becomes 0 whatever the loss (a hard deadline; required, so a run always hands over).

    Note that after a switch the loss is measured on student-driven states, which is usually much higher
    than on teacher-driven ones: set ``switch_back_threshold`` with that in mind.
    """

    kind = "loss_triggered"
    signal = "behavior_loss"

    def __init__(
        self,
        threshold: float,
        deadline: int,
        patience: int = 5,
        step: float | None = None,
        switch_back_threshold: float | None = None,
        initial_beta: float = 1.0,
    ) -> None:
        name = type(self).__name__
        super().__init__(initial_beta, check_int("deadline", deadline, name, 1))
        self.threshold = _check_positive("threshold", threshold, name)
        self.patience = check_int("patience", patience, name, 1)
        self.step = self.initial_beta if step is None else check_unit("step", step, name)
        if self.step == 0.0:
            raise ValueError(f"{name}: step=0 never changes beta; pass a step in (0, 1] or leave it None.")
        self.switch_back_threshold = None
        if switch_back_threshold is not None:
            self.switch_back_threshold = _check_positive("switch_back_threshold", switch_back_threshold, name)
            if self.switch_back_threshold <= self.threshold:
                raise ValueError(
                    f"{name}: switch_back_threshold={switch_back_threshold!r} must be above threshold={threshold!r} "
                    "(hysteresis; equal thresholds would switch back and forth every iteration)."
                )
        self._below = 0

    def _decide(self, iteration: int, value: float) -> float:
        beta = self._current
        if math.isnan(value):
            return beta
        if self.switch_back_threshold is not None and value > self.switch_back_threshold and beta < self.initial_beta:
            self._below = 0
            return min(self.initial_beta, beta + self.step)
        self._below = self._below + 1 if value < self.threshold else 0
        if self._below >= self.patience and beta > 0.0:
            self._below = 0
            return max(0.0, beta - self.step)
        return beta

    def _extra_state(self) -> dict[str, Any]:
        return {"below": self._below}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._below = int(state.get("below", 0))

    def __repr__(self) -> str:
        return (
            f"LossTriggeredSchedule(threshold={self.threshold}, patience={self.patience}, step={self.step}, "
            f"switch_back_threshold={self.switch_back_threshold}, deadline={self.deadline})"
        )


class _ProbedSchedule(AdaptiveSchedule):
    """Shared parts of the schedules that need student-driven samples: a probe fraction and EMA smoothing."""

    def __init__(
        self, probe_fraction: float, smoothing: float, min_beta: float, monotone: bool, deadline: int | None
    ) -> None:
        name = type(self).__name__
        self.probe_fraction = check_unit("probe_fraction", probe_fraction, name)
        if self.probe_fraction == 0.0:
            raise ValueError(
                f"{name}: probe_fraction=0 lets the teacher drive every env at the start, so no student-driven "
                "sample would ever be measured; pass a fraction in (0, 1), e.g. 0.1."
            )
        super().__init__(1.0 - self.probe_fraction, deadline)
        self.smoothing = check_unit("smoothing", smoothing, name)
        self.min_beta = check_unit("min_beta", min_beta, name)
        if not isinstance(monotone, bool):
            raise ValueError(f"{name}: monotone={monotone!r} must be True or False.")
        self.monotone = monotone
        self._ema = float("nan")

    def _smoothed(self, value: float) -> float:
        if math.isnan(value):
            return self._ema
        self._ema = value if math.isnan(self._ema) else self.smoothing * self._ema + (1 - self.smoothing) * value
        return self._ema

    own_param: str = ""
    """The subclass's own first parameter (``gain`` / ``target``), shown first in the description."""

    def _decide(self, iteration: int, value: float) -> float:
        ema = self._smoothed(value)
        if math.isnan(ema):
            return self._current
        return self._finish(self._target_beta(ema))

    def _target_beta(self, ema: float) -> float:
        raise NotImplementedError

    def _finish(self, target: float) -> float:
        beta = min(self.initial_beta, max(0.0, target))
        if beta < self.min_beta:
            beta = 0.0
        if self.monotone:
            beta = min(beta, self._current)
        return beta

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.own_param}={getattr(self, self.own_param)}, "
            f"probe_fraction={self.probe_fraction}, smoothing={self.smoothing}, min_beta={self.min_beta}, "
            f"monotone={self.monotone}, deadline={self.deadline})"
        )

    def _extra_state(self) -> dict[str, Any]:
        return {"ema": self._ema}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._ema = float(state.get("ema", float("nan")))


class DiscrepancyGatedSchedule(_ProbedSchedule):
    """Beta follows the normalized teacher-student discrepancy measured on student-driven states.

    beta = clamp(gain * EMA(discrepancy), 0, 1 - probe_fraction); below ``min_beta`` it becomes 0. The
    discrepancy is measured where the student drives, because that is where the distribution shift shows: on
    teacher-driven states the student can look perfect and still drift when it drives. So at most
    ``1 - probe_fraction`` of the envs are teacher-driven, and the probe envs keep measuring.
    ``monotone`` (default) never raises beta again. ``deadline``: beta 0 from that iteration on (optional).
    """

    kind = "discrepancy_gated"
    signal = "discrepancy"
    own_param = "gain"

    def __init__(
        self,
        gain: float = 1.0,
        probe_fraction: float = 0.1,
        smoothing: float = 0.8,
        min_beta: float = 0.05,
        monotone: bool = True,
        deadline: int | None = None,
    ) -> None:
        super().__init__(probe_fraction, smoothing, min_beta, monotone, deadline)
        self.gain = _check_positive("gain", gain, type(self).__name__)

    def _target_beta(self, ema: float) -> float:
        return self.gain * ema


class ReturnRatioSchedule(_ProbedSchedule):
    """Beta falls as the student-driven episode return approaches the teacher-driven one.

    beta = (1 - probe_fraction) * clamp((target - EMA(ratio)) / target, 0, 1), ratio = mean return of episodes
    the student drove / mean return of episodes the teacher drove; below ``min_beta`` it becomes 0. Needs whole
    episodes with one driver, so the mixing ``granularity`` must be ``episode``; at least ``probe_fraction`` of the
    episodes are student-driven. Returns must be positive on average for the ratio to mean anything.
    """

    kind = "return_ratio"
    signal = "return_ratio"
    needs_granularity = "episode"  # it compares episodes driven by the student alone with ones by the teacher alone
    own_param = "target"

    def __init__(
        self,
        target: float = 0.95,
        probe_fraction: float = 0.1,
        smoothing: float = 0.8,
        min_beta: float = 0.05,
        monotone: bool = True,
        deadline: int | None = None,
    ) -> None:
        super().__init__(probe_fraction, smoothing, min_beta, monotone, deadline)
        self.target = _check_positive("target", target, type(self).__name__)

    def _target_beta(self, ema: float) -> float:
        return self.initial_beta * min(1.0, max(0.0, (self.target - ema) / self.target))
