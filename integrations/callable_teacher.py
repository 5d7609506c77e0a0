"""Any callable ``teacher(obs) -> actions`` (a scripted controller, an MPC, an SB3 model) as the teacher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dagmix.algorithms import compat

TeacherFn = Callable[[torch.Tensor], torch.Tensor]
"""``fn(obs) -> actions``: obs float tensor (num_envs, teacher_obs_dim) on the algorithm's device (the teacher
groups concatenated); returns (num_envs, num_actions) on the same device. Called under ``torch.inference_mode``."""


class CallableTeacher(nn.Module):
    """An rsl_rl teacher model that calls a user function instead of a network.

    Usable as ``train_cfg["teacher"] = {"class_name": "dagmix.integrations.callable_teacher:CallableTeacher",
    "fn": "my_pkg.experts:pendulum_expert"}`` on rsl-rl 4.x/5.x (``fn`` may also be the callable itself), or
    installed into any runner with :func:`use_callable_teacher`. It has no parameters; its state dict holds one
    buffer (``num_actions``), so checkpoints keep rsl_rl's layout and load into a runner built from the same config.
    """

    is_recurrent = False

    def __init__(
        self,
        obs: Any = None,
        obs_groups: dict[str, list[str]] | None = None,
        obs_set: str = "teacher",
        output_dim: int = 0,
        fn: TeacherFn | str | None = None,
    ) -> None:
        """Build the teacher; rsl_rl's model arguments are accepted so that ``class_name`` can name this class.

        Args:
            obs: The observations (unused; rsl_rl passes them).
            obs_groups: rsl_rl's resolved observation sets; ``obs_groups[obs_set]`` are concatenated for ``fn``.
            obs_set: The set this model reads (``teacher``).
            output_dim: The number of actions.
            fn: The teacher, or its import path ``"pkg.module:function"``; None leaves it unset (loading a
                checkpoint for the student needs no teacher).
        """
        super().__init__()
        self.obs_groups = list(obs_groups[obs_set]) if obs_groups is not None else []
        self.fn: TeacherFn | None = compat.resolve_class(fn, None) if fn is not None else None
        self.register_buffer("num_actions", torch.tensor(int(output_dim)))
        self._output_dim = int(output_dim)
        self._checked_fn: Any = None  # the function whose output was validated (once per function)

    def forward(self, obs: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Return ``fn`` of the teacher observations (a TensorDict's teacher groups, or a concatenated tensor)."""
        if self.fn is None:
            raise ValueError(
                "CallableTeacher has no function: pass fn=... in the teacher config or call "
                "dagmix.integrations.callable_teacher.use_callable_teacher(runner, fn)."
            )
        x = obs if isinstance(obs, torch.Tensor) else torch.cat([obs[g] for g in self.obs_groups], dim=-1)
        out = self.fn(x)
        if self._checked_fn is not self.fn:  # once: shape, dtype and device are metadata (no host sync)
            _check_output(self.fn, out, x, self._output_dim)
            self._checked_fn = self.fn
        return out

    def reset(self, dones: torch.Tensor | None = None, hidden_state: Any = None) -> None:
        """No memory to reset."""

    def get_hidden_state(self) -> None:
        """No hidden state."""
        return None

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        """No hidden state."""

    def update_normalization(self, obs: Any) -> None:
        """No normalizer."""


def _check_output(fn: Any, out: Any, obs: torch.Tensor, num_actions: int) -> None:
    """Raise a ValueError naming ``fn`` unless ``out`` is a float tensor (num_envs, num_actions) on obs' device."""
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    expected = f"a floating-point torch.Tensor of shape ({obs.shape[0]}, {num_actions}) on {obs.device}"
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"The teacher function {name} returned {type(out).__name__}; it must return {expected} (num_envs, "
            "num_actions), e.g. torch.as_tensor(actions, dtype=torch.float32, device=obs.device)."
        )
    problems = []
    if tuple(out.shape) != (obs.shape[0], num_actions):
        problems.append(f"shape {tuple(out.shape)} (one action per env is needed: no broadcasting)")
    if not out.is_floating_point():
        problems.append(f"dtype {out.dtype}")
    if out.device != obs.device:
        problems.append(f"device {out.device}")
    if problems:
        got = ", ".join(problems)
        raise ValueError(f"The teacher function {name} returned a tensor with {got}; expected {expected}.")


def use_callable_teacher(runner: Any, fn: TeacherFn | str) -> CallableTeacher:
    """Make ``fn`` the teacher of a distillation runner (or algorithm) and mark the teacher as loaded.

    Call it instead of ``runner.load(teacher_checkpoint)``, before ``learn``, and before ``runner.load`` of a dagmix
    checkpoint of the same run (to resume). Works on every supported rsl-rl-lib (on 3.x it replaces the
    StudentTeacher module's teacher network).

    Args:
        runner: A ``DistillationRunner`` / ``MixingDistillationRunner``, or its ``alg``.
        fn: ``fn(obs) -> actions`` (see :data:`TeacherFn`) or its import path ``"pkg.module:function"``.

    Returns:
        The installed teacher module.
    """
    alg = getattr(runner, "alg", runner)
    num_actions = alg.storage.privileged_actions.shape[-1]
    teacher = compat.raw_teacher(alg)
    if compat.STUDENT_TEACHER_POLICY:  # 3.x: StudentTeacher.evaluate() feeds the concatenated teacher groups
        teacher = CallableTeacher(output_dim=num_actions, fn=fn).to(alg.device)
    elif isinstance(teacher, CallableTeacher):
        teacher.fn = compat.resolve_class(fn, None)
    else:
        groups = {"teacher": getattr(teacher, "obs_groups", ["teacher"])}
        teacher = CallableTeacher(None, groups, "teacher", num_actions, fn).to(alg.device)
    compat.set_teacher(alg, teacher)
    return teacher
