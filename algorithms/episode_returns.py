"""Return tracking: mean return of episodes that one driver (student or teacher) drove from start to end."""

from __future__ import annotations

import torch


class EpisodeReturns:
    """Accumulates, on the device and without a host sync, the returns of episodes with a single driver.

    Attributes:
        sums: Float tensor, shape (4,): student-driven return sum, count, teacher-driven return sum, count.
    """

    def __init__(self, num_envs: int, device: str | torch.device) -> None:
        self.returns = torch.zeros(num_envs, device=device)
        self.teacher_drove = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.student_drove = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.sums = torch.zeros(4, device=device)

    def record(self, teacher_mask: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        """Add one step (``teacher_mask``: bool, shape (num_envs,)); close the episodes that ended."""
        self.returns += rewards.view(-1)
        self.teacher_drove |= teacher_mask
        self.student_drove |= ~teacher_mask
        done = dones.view(-1).bool()
        pure_s = done & ~self.teacher_drove
        pure_t = done & ~self.student_drove
        ret = self.returns
        self.sums += torch.stack([(ret * pure_s).sum(), pure_s.sum(), (ret * pure_t).sum(), pure_t.sum()])
        keep = ~done
        self.returns *= keep
        self.teacher_drove &= keep
        self.student_drove &= keep

    def take(self) -> torch.Tensor:
        """Return this iteration's sums (a copy) and start the next iteration's from zero."""
        sums = self.sums.clone()
        self.sums.zero_()
        return sums


def return_ratio(sums: list[float]) -> float:
    """Return student-driven mean return / teacher-driven mean return (nan if either is missing or not > 0)."""
    ret_s, n_s, ret_t, n_t = sums
    nan = float("nan")
    teacher_mean = ret_t / n_t if n_t else nan
    ok = n_s and n_t and teacher_mean > 0
    return (ret_s / n_s) / teacher_mean if ok else nan
