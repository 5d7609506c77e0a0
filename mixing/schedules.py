"""Beta schedules: the probability that the teacher drives an environment, per learning iteration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def check_unit(name: str, value: float, kind: str) -> float:
    """Return ``value`` as float if it lies in [0, 1], else raise naming the value and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{kind}: {name}={value!r} must be a finite number in [0, 1].")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{kind}: {name}={value!r} is outside [0, 1]; beta is a probability, pass a value in [0, 1].")
    return float(value)


def check_int(name: str, value: int, kind: str, minimum: int) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise naming the value and the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{kind}: {name}={value!r} must be an integer >= {minimum}.")
    if value < minimum:
        raise ValueError(f"{kind}: {name}={value!r} must be >= {minimum}.")
    return value


class BetaSchedule:
    """Base class: ``beta(iteration)`` is the teacher probability at a 0-based learning iteration.

    Subclasses implement :meth:`_beta`. Stateless schedules need no state; adaptive ones override
    :meth:`state_dict` / :meth:`load_state_dict`.
    """

    kind: str = "base"

    phase1_iterations: int | None = None
    """Length of a fixed teacher-driven phase 1 (the two-stage ``step`` schedule), shown in the phase lines."""

    signal: str | None = None
    """The per-iteration signal an adaptive schedule reads (``behavior_loss``, ``discrepancy``, ``return_ratio``),
    passed to :meth:`observe`; None: beta is a function of the iteration alone."""

    needs_granularity: str | None = None
    """The mixing granularity the schedule needs (e.g. ``episode``); None: any."""

    def beta(self, iteration: int) -> float:
        """Return beta in [0, 1] for the runner's 0-based iteration ``iteration``."""
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise ValueError(f"iteration={iteration!r} must be a non-negative int (the runner's 0-based `it`).")
        return min(1.0, max(0.0, float(self._beta(iteration))))

    def _beta(self, iteration: int) -> float:
        raise NotImplementedError

    def __call__(self, iteration: int) -> float:
        """Alias of :meth:`beta`."""
        return self.beta(iteration)

    def phase(self, iteration: int) -> int:
        """Return 1 while the teacher still drives some envs (beta > 0), 2 once beta == 0."""
        return 1 if self.beta(iteration) > 0.0 else 2

    def first_zero_iteration(self) -> int | None:
        """Return the first iteration with beta == 0 (the switch to phase 2), or None if there is none."""
        return None

    def observe(self, iteration: int, signals: Mapping[str, float]) -> None:
        """Take ``iteration``'s measured ``signals`` (only schedules with a :attr:`signal` use them)."""

    def log_scalars(self) -> dict[str, float]:
        """Return the schedule's own scalars logged each iteration (none for open-loop schedules)."""
        return {}

    def describe(self) -> str:
        """Return a one-line description for logs."""
        return repr(self)

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule's mutable state (empty for stateless schedules)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore state produced by :meth:`state_dict`."""
        if state:
            raise ValueError(f"{type(self).__name__} is stateless but got state keys {sorted(state)}.")


class ConstantSchedule(BetaSchedule):
    """Beta is the same at every iteration (0.0: student drives, 1.0: teacher drives / behaviour cloning)."""

    kind = "constant"

    def __init__(self, beta: float) -> None:
        """Args: beta: teacher probability in [0, 1]."""
        self.value = check_unit("beta", beta, "ConstantSchedule")

    def _beta(self, iteration: int) -> float:
        return self.value

    def first_zero_iteration(self) -> int | None:
        """Return 0 when beta is 0, else None."""
        return 0 if self.value == 0.0 else None

    def __repr__(self) -> str:
        return f"ConstantSchedule(beta={self.value})"


class StepSchedule(BetaSchedule):
    """Two-stage training: beta 1.0 for iterations < ``phase1_iterations``, then 0.0."""

    kind = "step"

    def __init__(self, phase1_iterations: int) -> None:
        """Args: phase1_iterations: number of teacher-driven iterations (>= 0); the student drives from then on."""
        self.phase1_iterations = check_int("phase1_iterations", phase1_iterations, "StepSchedule", 0)

    def _beta(self, iteration: int) -> float:
        return 1.0 if iteration < self.phase1_iterations else 0.0

    def first_zero_iteration(self) -> int | None:
        """Return ``phase1_iterations``."""
        return self.phase1_iterations

    def __repr__(self) -> str:
        return f"StepSchedule(phase1_iterations={self.phase1_iterations})"


class _RampSchedule(BetaSchedule):
    """Beta goes from ``start`` (iteration 0) to ``end`` (iteration ``iterations`` and after) along ``_shape``.

    A subclass gives ``kind`` and ``_shape(iteration)``, beta before the end of the ramp.
    """

    def __init__(self, start: float = 1.0, end: float = 0.0, iterations: int = 1) -> None:
        """Args: start: beta at iteration 0; end: beta from ``iterations`` on; iterations: ramp length (>= 1)."""
        name = type(self).__name__
        self.start = check_unit("start", start, name)
        self.end = check_unit("end", end, name)
        if isinstance(iterations, int) and not isinstance(iterations, bool) and iterations < 1:
            raise ValueError(
                f"{name}: iterations={iterations} must be >= 1 (the ramp length); "
                "for an immediate switch use StepSchedule or ConstantSchedule."
            )
        self.iterations = check_int("iterations", iterations, name, 1)

    def _shape(self, iteration: int) -> float:
        raise NotImplementedError

    def _beta(self, iteration: int) -> float:
        return self.end if iteration >= self.iterations else self._shape(iteration)

    def first_zero_iteration(self) -> int | None:
        """Return the first iteration where the ramp reaches 0, if it does."""
        if self.start == 0.0:
            return 0
        return self.iterations if self.end == 0.0 else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(start={self.start}, end={self.end}, iterations={self.iterations})"


class LinearSchedule(_RampSchedule):
    """Beta goes linearly from ``start`` (iteration 0) to ``end`` (iteration ``iterations`` and after)."""

    kind = "linear"

    def _shape(self, iteration: int) -> float:
        return self.start + (self.end - self.start) * (iteration / self.iterations)


class CosineSchedule(_RampSchedule):
    """Beta follows half a cosine from ``start`` (iteration 0) to ``end`` (iteration ``iterations`` and after)."""

    kind = "cosine"

    def _shape(self, iteration: int) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * iteration / self.iterations))


class ExponentialSchedule(BetaSchedule):
    """DAgger's decay: beta_i = start * decay**i, and 0 once that falls below ``cutoff``."""

    kind = "exponential"

    def __init__(self, decay: float, start: float = 1.0, cutoff: float = 0.01) -> None:
        """Args: decay: factor per iteration in (0, 1); start: beta at iteration 0; cutoff: beta below this is 0."""
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
            raise ValueError(
                f"ExponentialSchedule: decay={decay!r} must lie in (0, 1) (e.g. 0.99); "
                "for a constant beta use ConstantSchedule."
            )
        self.decay = float(decay)
        self.start = check_unit("start", start, "ExponentialSchedule")
        self.cutoff = check_unit("cutoff", cutoff, "ExponentialSchedule")
        if self.cutoff == 0.0:
            raise ValueError(
                "ExponentialSchedule: cutoff=0.0 would let beta reach 0 only by floating-point underflow; "
                "pass a positive cutoff (e.g. 0.01) below which beta is 0."
            )
        self._zero_at = self._compute_first_zero()

    def _compute_first_zero(self) -> int | None:
        if self.start < self.cutoff:
            return 0
        i = max(0, math.floor(math.log(self.cutoff / self.start) / math.log(self.decay)) - 1)
        while self.start * self.decay**i >= self.cutoff:
            i += 1
        return i

    def _beta(self, iteration: int) -> float:
        if self._zero_at is not None and iteration >= self._zero_at:
            return 0.0
        return self.start * self.decay**iteration

    def first_zero_iteration(self) -> int | None:
        """Return the first iteration whose beta falls below ``cutoff``."""
        return self._zero_at

    def __repr__(self) -> str:
        return f"ExponentialSchedule(decay={self.decay}, start={self.start}, cutoff={self.cutoff})"


class PiecewiseLinearSchedule(BetaSchedule):
    """Beta interpolates linearly between ``(iteration, beta)`` points; constant before the first and after the last."""

    kind = "piecewise_linear"

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        """Args: points: ``[(iteration, beta), ...]`` with strictly increasing non-negative iterations."""
        if not isinstance(points, (list, tuple)) or len(points) == 0:
            raise ValueError(
                f"PiecewiseLinearSchedule: points={points!r} must be a non-empty list of (iteration, beta)."
            )
        parsed: list[tuple[int, float]] = []
        for k, point in enumerate(points):
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise ValueError(f"PiecewiseLinearSchedule: points[{k}]={point!r} must be a pair (iteration, beta).")
            it = check_int(f"points[{k}] iteration", point[0], "PiecewiseLinearSchedule", 0)
            b = check_unit(f"points[{k}] beta", point[1], "PiecewiseLinearSchedule")
            if parsed and it <= parsed[-1][0]:
                raise ValueError(
                    f"PiecewiseLinearSchedule: iterations must increase strictly, got {parsed[-1][0]} then {it} "
                    f"at points[{k}]."
                )
            parsed.append((it, b))
        self.points = parsed

    def _beta(self, iteration: int) -> float:
        pts = self.points
        if iteration <= pts[0][0]:
            return pts[0][1]
        for (i0, b0), (i1, b1) in zip(pts[:-1], pts[1:], strict=True):
            if iteration <= i1:
                if iteration == i1:
                    return b1
                return b0 + (b1 - b0) * (iteration - i0) / (i1 - i0)
        return pts[-1][1]

    def first_zero_iteration(self) -> int | None:
        """Return the first iteration with beta == 0, if any."""
        pts = self.points
        if pts[0][1] == 0.0:
            return 0
        for (_, b0), (i1, b1) in zip(pts[:-1], pts[1:], strict=True):
            if b1 == 0.0 and b0 > 0.0:
                return i1
        return None

    def __repr__(self) -> str:
        return f"PiecewiseLinearSchedule(points={[list(p) for p in self.points]})"
