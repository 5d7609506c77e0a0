"""Console lines and logged scalar names of the mixing phases (the two-stage patch's exact wording)."""

from __future__ import annotations

from dagmix.mixing.schedules import BetaSchedule

SCALAR_TRAINING_PHASE = "Distillation/training_phase"
SCALAR_CURRENT_ITERATION = "Distillation/current_iteration"
SCALAR_BETA = "Distillation/beta"
SCALAR_TEACHER_FRACTION = "Distillation/teacher_fraction"
SCALAR_LOSS_TEACHER_DRIVEN = "Distillation/behavior_loss_teacher_driven"
SCALAR_LOSS_STUDENT_DRIVEN = "Distillation/behavior_loss_student_driven"
SCALAR_ESTIMATOR_LOSS = "Distillation/estimator_loss"  # an EstimatorRNNModel student's (both algorithms)


def phase_lines(schedule: BetaSchedule, iteration: int, beta: float) -> list[str]:
    """Return the per-iteration console lines for ``iteration`` (printed right before rsl_rl's block)."""
    if beta == 1.0:
        lines = ["Training Phase: Phase 1 (teacher actions)"]
    elif beta == 0.0:
        lines = ["Training Phase: Phase 2 (student actions)"]
    else:
        lines = [f"Training Phase: Mixed (beta={beta:.2f})"]
    phase1 = schedule.phase1_iterations
    if phase1 is not None and beta > 0.0 and iteration < phase1:
        lines.append(f"Phase Iteration: {iteration + 1}/{phase1} (Phase 1)")
    return lines


def switch_beyond_end(start: int, length: int | None, switch: int | None) -> str | None:
    """Return the warning for a run of ``length`` iterations from ``start`` that ends before the ``switch``."""
    if length is None or switch is None or switch <= start or switch < start + length:
        return None
    return (
        f"The student takes over (beta = 0) at iteration {switch}, but this run ends after iteration "
        f"{start + length - 1} (it starts at {start} and runs {length} iterations): phase 2 is not reached "
        "in this run. That is fine when you resume in chunks; otherwise lower the switch or raise max_iterations."
    )


def switch_banner(iteration: int) -> str:
    """Return the banner printed once when the student takes over at ``iteration`` (first phase-2 iteration)."""
    bar = "=" * 80
    return "\n".join(
        [
            bar,
            bar,
            "  SWITCHING TO PHASE 2: Now using STUDENT actions to update environment",
            f"  Iteration: {iteration}",
            bar,
            bar,
        ]
    )


class ExtrasLog:
    """Writes the iteration's scalars into the env's extras dicts, which rsl_rl's logger averages per key.

    The target is ``extras["episode"]`` if the env uses it, else ``extras["log"]``. Envs that replace the dict only
    at resets (Isaac Lab) hand over several per iteration, some still holding older values: all are written.
    """

    def __init__(self) -> None:
        self.last: dict | None = None  # the extras dict of the latest step
        self._targets: list[dict] = []  # the extras dicts the logger saw this iteration
        self._keys: set[str] = set()

    def note(self, extras: dict) -> None:
        """Note the dict of this step's ``extras`` that the scalars go to."""
        target = extras["episode"] if "episode" in extras else extras.setdefault("log", {})
        if not self._targets or target is not self._targets[-1]:
            self._targets.append(target)
        self.last = target

    def write(self, metrics: dict[str, float]) -> None:
        """Write ``metrics`` into every noted dict (dropping keys of earlier iterations), then forget them."""
        self._keys |= metrics.keys()
        for target in {id(t): t for t in self._targets}.values():
            for key in self._keys - metrics.keys():  # keys a reused dict may still hold
                target.pop(key, None)
            target.update(metrics)
        self._targets.clear()
