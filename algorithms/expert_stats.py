"""Per-expert statistics of a multi-teacher run: each expert's behaviour loss and share of the env steps.

A teacher with several experts (:class:`dagmix.models.MultiTeacherModel`, or any model with ``num_experts``,
``expert_ids`` and ``check_selector``) is recognised by those attributes. The sums are accumulated on the device
and read with the iteration's other statistics, in its one host read.
"""

from __future__ import annotations

from typing import Any

import torch


def scalar_behavior_loss(k: int) -> str:
    """Return the logged name of expert ``k``'s behaviour loss (its samples' mean loss)."""
    return f"Distillation/behavior_loss_expert_{k}"


def scalar_expert_fraction(k: int) -> str:
    """Return the logged name of expert ``k``'s fraction of the rollout's env steps."""
    return f"Distillation/expert_fraction_{k}"


class ExpertStats:
    """Each env step's expert and each expert's loss sums, on the device.

    Attributes:
        teacher: The multi-expert teacher (read for ``expert_ids`` and ``check_selector``).
        num_experts: K.
        ids: Long tensor, shape (steps, num_envs), on ``device``: the expert of each stored step (rollout order).
        loss: Float tensor, shape (2, K), on ``device``: per expert the loss sum and the number of samples.
    """

    def __init__(self, teacher: Any, steps: int, num_envs: int, device: str | torch.device) -> None:
        self.teacher = teacher
        self.num_experts = int(teacher.num_experts)
        self.ids = torch.zeros(steps, num_envs, dtype=torch.long, device=device)
        self.loss = torch.zeros(2, self.num_experts, device=device)

    @classmethod
    def attach(cls, teacher: Any, steps: int, num_envs: int, device: str | torch.device) -> ExpertStats | None:
        """Return the statistics of ``teacher`` if it has several experts, else None (no cost)."""
        if teacher is None or not getattr(teacher, "num_experts", None) or not hasattr(teacher, "expert_ids"):
            return None
        return cls(teacher, steps, num_envs, device)

    def current(self) -> torch.Tensor:
        """Return the experts of the teacher's latest forward pass: long, shape (num_envs,), on the device."""
        return self.teacher.expert_ids

    def record(self, step: int) -> None:
        """Store the experts of the latest forward pass as rollout step ``step`` (no host read)."""
        if step < self.ids.shape[0]:
            self.ids[step].copy_(self.current())

    def add_loss(self, per_sample: torch.Tensor, ids: torch.Tensor) -> None:
        """Add per-sample losses (shape (n,)) to their experts' sums; ``ids`` holds each sample's expert."""
        ids = ids.reshape(-1).to(torch.long)
        per_sample = per_sample.detach().reshape(-1).float()
        self.loss[0].index_add_(0, ids, per_sample)
        self.loss[1].index_add_(0, ids, torch.ones_like(per_sample))

    def add_step_loss(self, step: int, per_sample: torch.Tensor) -> None:
        """Add the per-env losses (shape (num_envs,)) of stored step ``step`` (:attr:`ids`' row)."""
        self.add_loss(per_sample, self.ids[step % self.ids.shape[0]])

    def check(self) -> None:
        """Raise if a selector value named no expert since the last check (one host read); once per update."""
        self.teacher.check_selector()

    def take(self, ids: torch.Tensor) -> torch.Tensor:
        """Return the iteration's sums (float, shape (3 * K,), on the device) and reset the loss sums.

        Args:
            ids: The expert of each step of the rollout (any shape; e.g. :attr:`ids` or the stored ids).

        Returns:
            Per expert: its env steps in ``ids``, its loss sum, its loss samples (one slot of
            :class:`~dagmix.algorithms.iteration_stats.IterationStats`; :meth:`metrics` reads it back).
        """
        counts = torch.bincount(ids.reshape(-1).to(torch.long), minlength=self.num_experts)[: self.num_experts]
        out = torch.cat([counts.float(), self.loss.reshape(-1)])
        self.loss.zero_()
        return out

    def metrics(self, values: list[float]) -> dict[str, float]:
        """Return the logged scalars from :meth:`take`'s values read back (a loss for experts with samples)."""
        k = self.num_experts
        steps, sums, counts = values[:k], values[k : 2 * k], values[2 * k : 3 * k]
        total = max(sum(steps), 1.0)
        out = {scalar_expert_fraction(i): steps[i] / total for i in range(k)}
        out.update({scalar_behavior_loss(i): sums[i] / counts[i] for i in range(k) if counts[i] > 0})
        return out
