"""Who-drove-aware behaviour loss: per-sample weights, and the loss split by who drove (for logging)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dagmix.mixing.options import LossWeighting


class SplitLoss:
    """Wraps the behaviour loss; also sums it per sample on teacher- and student-driven steps (on the device).

    With per-sample ``weights`` the loss of a gradient step is sum(w * loss_i) / sum(w), else rsl_rl's mean. A
    gradient step only keeps a reference to its (detached) prediction and label; the per-sample losses and their
    split by who drove are computed in one batch at :meth:`end`, so the split costs nothing per gradient step.

    Attributes:
        sums: Float tensor, shape (4,): loss sum on teacher-driven samples, their count, the same student-driven
            (set by :meth:`end`).
    """

    def __init__(self, fn: Any, device: str | torch.device) -> None:
        self.fn = fn
        self.sums = torch.zeros(4, device=device)
        self.mask: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None  # (steps, num_envs) per-sample weights, or None: the plain mean
        self.per_step: Callable[[int, torch.Tensor], None] | None = None
        self.index = 0
        self._steps: list[int] = []  # the stored step of each gradient step's samples
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # their detached predictions and labels
        self._pers: list[torch.Tensor] = []  # or, with weights, their per-sample losses (already computed)

    def begin(
        self,
        mask: torch.Tensor,
        weights: torch.Tensor | None = None,
        per_step: Callable[[int, torch.Tensor], None] | None = None,
    ) -> None:
        """Start an update: ``mask`` (bool, shape (steps, num_envs)) says who drove each stored sample.

        ``per_step(step, losses)`` also receives each stored step's per-sample losses (e.g. per-expert sums).
        """
        self.mask, self.weights, self.per_step, self.index = mask, weights, per_step, 0
        self._steps, self._pairs, self._pers = [], [], []

    def end(self) -> None:
        """End the update: compute :attr:`sums` in one batch; later calls (replay, evaluation) are plain."""
        if self.mask is not None and self._steps:
            if self._pairs:
                preds, labels = (torch.stack(t).float() for t in zip(*self._pairs, strict=True))
                per = self.fn(preds, labels, reduction="none")
                per = per.reshape(per.shape[0], per.shape[1], -1).mean(-1)  # (gradient steps, num_envs)
            else:
                per = torch.stack(self._pers)
            driven = self.mask[torch.tensor(self._steps, device=self.mask.device)].to(per.dtype)
            on_t, count_t = (per * driven).sum(), driven.sum()
            self.sums = torch.stack([on_t, count_t, per.sum() - on_t, driven.numel() - count_t])
            if self.per_step is not None:
                for step, losses in zip(self._steps, per, strict=True):
                    self.per_step(step, losses)
        self.mask = self.weights = self.per_step = None
        self._steps, self._pairs, self._pers = [], [], []

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Return the (weighted) loss of one gradient step; during an update, also keep what its split needs."""
        if self.mask is None:
            return self.fn(pred, target, *args, **kwargs)
        step = self.index % self.mask.shape[0]
        self.index += 1
        self._steps.append(step)
        if self.weights is None:
            self._pairs.append((pred.detach(), target.detach()))
            return self.fn(pred, target, *args, **kwargs)
        per = self.fn(pred, target, *args, reduction="none", **kwargs)
        per = per.reshape(per.shape[0], -1).mean(-1)
        w = self.weights[step].to(per.dtype)
        self._pers.append(per.detach().float())
        return (per * w).sum() / w.sum().clamp_min(1e-12)


class WhoDroveWeights:
    """Per-sample loss weights of a rollout from :class:`LossWeighting`: by who drove and the episode's outcome."""

    def __init__(self, cfg: LossWeighting, steps: int, num_envs: int, device: str | torch.device) -> None:
        self.cfg = cfg
        self.track_outcomes = cfg.failed_episode != 1.0
        self.time_outs = torch.zeros(steps, num_envs, dtype=torch.bool, device=device) if self.track_outcomes else None

    def record(self, step: int, extras: dict[str, Any]) -> None:
        """Store the step's ``extras["time_outs"]`` (only when outcomes are weighted)."""
        if self.time_outs is None:
            return
        time_outs = extras.get("time_outs")
        if time_outs is None:
            raise ValueError(
                "loss_weighting.failed_episode needs extras['time_outs'] from the env (rsl_rl's convention) to "
                "tell terminations from time-outs; this env does not provide it."
            )
        if step < self.time_outs.shape[0]:
            self.time_outs[step].copy_(time_outs.view(-1))

    def weights(self, teacher_masks: torch.Tensor, dones: torch.Tensor, iteration: int, filled: int) -> torch.Tensor:
        """Return the (steps, num_envs) weights of this rollout (``dones`` as stored by rsl_rl)."""
        cfg = self.cfg
        dropped = cfg.drop_teacher_driven_after is not None and iteration >= cfg.drop_teacher_driven_after
        w_teacher = 0.0 if dropped else cfg.teacher_driven
        weights = torch.where(teacher_masks, w_teacher, cfg.student_driven).float()
        if self.time_outs is not None:
            steps = teacher_masks.shape[0]
            dones = dones.view(steps, -1).bool()
            failed_end = dones & ~self.time_outs
            failed = torch.zeros_like(dones)
            outcome = torch.zeros_like(dones[0])  # outcome of the episode each step belongs to; False: unknown
            for t in range(filled - 1, -1, -1):  # backwards: a done at t decides the steps since the last done
                outcome = torch.where(dones[t], failed_end[t], outcome)
                failed[t] = outcome
            weights = weights * torch.where(failed, cfg.failed_episode, 1.0)
        return weights
