"""Stop a distillation run on non-finite teacher labels or executed actions, before the student trains on them.

A teacher returning NaN or Inf for one env (or an env returning Inf observations) would otherwise turn the student
into NaN within one update and save NaN checkpoints. The counts are accumulated on the device at every step (no
host sync) and read once per iteration, before the update's gradient steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class NonFiniteError(FloatingPointError):
    """Non-finite teacher labels, executed actions, behaviour loss or student weights."""


def teacher_name(teacher: Any) -> str:
    """Return a readable name of ``teacher``: the function of a callable teacher, else the class."""
    fn = getattr(teacher, "fn", None)
    if fn is not None:
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return type(teacher).__name__


class FiniteGuard:
    """Per-env counts of non-finite teacher labels and executed actions, on the device.

    Attributes:
        bad: Int tensor, shape (2, num_envs), on ``device``: row 0 counts non-finite label entries (the teacher's
            raw action, before ``teacher_action_clip``), row 1 non-finite executed action entries.
    """

    def __init__(self, num_envs: int, device: str | torch.device) -> None:
        self.bad = torch.zeros(2, num_envs, dtype=torch.int64, device=device)

    def record(self, labels: torch.Tensor, executed: torch.Tensor) -> None:
        """Count non-finite entries per env; both tensors have shape (num_envs, num_actions). No host sync."""
        self.bad[0] += (~torch.isfinite(labels)).sum(-1)
        self.bad[1] += (~torch.isfinite(executed)).sum(-1)

    def check(self, teacher: Any) -> None:
        """Read the counts once (one host read), reset them, and raise if any entry was non-finite.

        Raises:
            NonFiniteError: naming the teacher, the number of bad values and one env that had them.
        """
        per_kind = self.bad.sum(1)
        first_env = (self.bad.sum(0) > 0).to(torch.int64).argmax().view(1)
        labels, executed, env = torch.cat([per_kind, first_env]).tolist()
        self.bad.zero_()
        if labels or executed:
            raise NonFiniteError(
                f"The teacher {teacher_name(teacher)} produced {labels} non-finite (NaN or Inf) action values this "
                f"iteration, and {executed} executed action values were non-finite (e.g. env {env}); stopped before "
                "the update so that the student is not trained on them. Check the teacher and that env's "
                "observations (rsl_rl's check_for_nan sees NaN only, not Inf)."
            )


def check_loss(loss_dict: dict[str, float], teacher: Any) -> None:
    """Raise if a loss of the update is non-finite (e.g. labels so large that their square overflows)."""
    bad = {k: v for k, v in loss_dict.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise NonFiniteError(
            f"The update's loss is non-finite ({', '.join(f'{k}={v}' for k, v in bad.items())}) with the teacher "
            f"{teacher_name(teacher)}: its labels are finite but too large (e.g. 1e30), so the student's weights are "
            "now non-finite. Scale the teacher's actions or set teacher_action_clip; no checkpoint is saved."
        )


def check_student_weights(student: torch.nn.Module) -> None:
    """Raise if any parameter or buffer of ``student`` is non-finite (one host read); called before saving."""
    tensors = [t for t in (*student.parameters(), *student.buffers()) if t.is_floating_point()]
    if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
        raise NonFiniteError(
            "The student's weights are non-finite (NaN or Inf); refusing to save them as a checkpoint. An earlier "
            "error of the run says why (non-finite teacher labels or loss)."
        )
