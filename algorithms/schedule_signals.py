"""The signals adaptive schedules read, gathered on the device and computed once per iteration on the host.

A schedule declares the one it reads (:attr:`~dagmix.mixing.BetaSchedule.signal`): ``behavior_loss``,
``discrepancy`` or ``return_ratio`` (see :mod:`dagmix.mixing.adaptive`).
"""

from __future__ import annotations

import torch

from dagmix.algorithms.episode_returns import return_ratio
from dagmix.algorithms.iteration_stats import IterationStats


def add_label_moments(stats: IterationStats, labels: torch.Tensor, teacher_masks: torch.Tensor) -> None:
    """Add the teacher labels' count, sum and sum of squares on student-driven samples (for Var(a_teacher)).

    Args:
        stats: The iteration's statistics; gets slots ``label_count``, ``label_sum`` and ``label_sq_sum``.
        labels: Teacher actions, shape (steps, num_envs, num_actions).
        teacher_masks: Bool, shape (steps, num_envs): True where the teacher drove.
    """
    labels = labels.float()
    on_s = (~teacher_masks).unsqueeze(-1).float()
    stats.add("label_count", on_s.sum())
    stats.add("label_sum", (labels * on_s).sum((0, 1)))
    stats.add("label_sq_sum", (labels.square() * on_s).sum((0, 1)))


def compute_signal(signal: str, values: dict[str, list[float]]) -> dict[str, float]:
    """Return ``{signal: value}`` from the iteration's read-back statistics (nan where it cannot be measured)."""
    nan = float("nan")
    loss_t, cnt_t, loss_s, cnt_s = values["behavior_loss"]
    if signal == "behavior_loss":
        return {signal: (loss_t + loss_s) / (cnt_t + cnt_s) if cnt_t + cnt_s else nan}
    if signal == "discrepancy":  # E[(a_student - a_teacher)^2] / Var(a_teacher) on student-driven samples
        (n_s,), sum_a, sum_a2 = values["label_count"], values["label_sum"], values["label_sq_sum"]
        var = sum(q / n_s - (m / n_s) ** 2 for m, q in zip(sum_a, sum_a2, strict=True)) / len(sum_a) if n_s else 0.0
        return {signal: (loss_s / cnt_s) / var if cnt_s and var > 0 else nan}
    if signal == "return_ratio":
        return {signal: return_ratio(values["episode_returns"])}
    raise ValueError(f"signal={signal!r} is not one of 'behavior_loss', 'discrepancy', 'return_ratio'.")
