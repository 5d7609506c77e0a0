"""Console lines and logged scalar names of the mixing phases (the seed's exact wording)."""

from __future__ import annotations

from dagmix.mixing.schedules import BetaSchedule, StepSchedule

SCALAR_TRAINING_PHASE = "Distillation/training_phase"
SCALAR_CURRENT_ITERATION = "Distillation/current_iteration"
SCALAR_BETA = "Distillation/beta"
SCALAR_TEACHER_FRACTION = "Distillation/teacher_fraction"
SCALAR_LOSS_TEACHER_DRIVEN = "Distillation/behavior_loss_teacher_driven"
SCALAR_LOSS_STUDENT_DRIVEN = "Distillation/behavior_loss_student_driven"


def phase_lines(schedule: BetaSchedule, iteration: int, beta: float) -> list[str]:
    """Return the per-iteration console lines for ``iteration`` (printed right before rsl_rl's block)."""
    if beta == 1.0:
        lines = ["Training Phase: Phase 1 (teacher actions)"]
    elif beta == 0.0:
        lines = ["Training Phase: Phase 2 (student actions)"]
    else:
        lines = [f"Training Phase: Mixed (beta={beta:.2f})"]
    if isinstance(schedule, StepSchedule) and beta > 0.0 and iteration < schedule.phase1_iterations:
        lines.append(f"Phase Iteration: {iteration + 1}/{schedule.phase1_iterations} (Phase 1)")
    return lines


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
    """Hands per-iteration scalars to rsl_rl's logger through the env's extras dicts.

    rsl_rl's logger keeps the extras dict of every step (``extras["episode"]`` if present, else ``extras["log"]``)
    and averages each key over them when it logs. Envs that replace the dict only at resets (Isaac Lab) hand over
    several per iteration, some still holding older values, so the scalars are written into every one seen.
    """

    def __init__(self) -> None:
        """Start with no dicts seen."""
        self._targets: list[dict] = []
        self._keys: set[str] = set()

    def note(self, extras: dict) -> None:
        """Remember the dict the logger reads from this step's ``extras`` (call once per env step)."""
        target = extras["episode"] if "episode" in extras else extras.setdefault("log", {})
        if not self._targets or target is not self._targets[-1]:
            self._targets.append(target)

    def publish(self, metrics: dict[str, float]) -> None:
        """Write ``metrics`` into every dict seen since the last call (dropping keys of earlier iterations)."""
        self._keys |= metrics.keys()
        for target in {id(t): t for t in self._targets}.values():
            for key in self._keys - metrics.keys():  # keys a reused dict may still hold
                target.pop(key, None)
            target.update(metrics)
        self._targets.clear()
