"""Console lines and logged scalar names of the mixing phases (the two-stage patch's exact wording)."""

from __future__ import annotations

from dagmix.mixing.schedules import BetaSchedule

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
    phase1 = schedule.phase1_iterations
    if phase1 is not None and beta > 0.0 and iteration < phase1:
        lines.append(f"Phase Iteration: {iteration + 1}/{phase1} (Phase 1)")
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
