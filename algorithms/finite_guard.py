"""Stop a distillation run on non-finite teacher labels or executed actions, before the student trains on them.

A teacher returning NaN or Inf for one env (or an env returning Inf observations) would otherwise turn the student
into NaN within one update and save NaN checkpoints. The rollout's stored labels and executed actions are checked
with one reduction per update (one host read), before its gradient steps; nothing is added to the env step.
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


def check_finite(labels: torch.Tensor, executed: torch.Tensor, teacher: Any) -> None:
    """Raise if any stored teacher label or executed action of the rollout is non-finite; one host read.

    Called once per update, before its gradient steps: the labels are stored raw (``teacher_action_clip`` is
    applied after this check, so it cannot hide an Inf), and nothing is counted during the rollout (no per-step cost).

    Args:
        labels: The rollout's raw teacher actions, shape (steps, num_envs, num_actions).
        executed: The actions the env received, same shape.
        teacher: Named in the error.

    Raises:
        NonFiniteError: naming the teacher, the number of bad values and one env that had them.
    """
    # the fast path, every update: two float64 sums (no finite float32 values can overflow them) and one host read
    sums = torch.stack([labels.sum(dtype=torch.float64), executed.sum(dtype=torch.float64)])
    if bool(torch.isfinite(sums).all()):
        return
    bad = torch.stack([(~torch.isfinite(labels)).sum((0, 2)), (~torch.isfinite(executed)).sum((0, 2))])
    first_env = (bad.sum(0) > 0).to(torch.int64).argmax().view(1)
    num_labels, num_executed, env = torch.cat([bad.sum(1), first_env]).tolist()
    if num_labels or num_executed:
        raise NonFiniteError(
            f"The teacher {teacher_name(teacher)} produced {num_labels} non-finite (NaN or Inf) action values this "
            f"iteration, and {num_executed} executed action values were non-finite (e.g. env {env}); stopped before "
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
