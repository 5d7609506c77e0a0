"""Weight averaging of the student (``ema_decay``): an exponential moving average of its parameters and buffers.

What is averaged, where each set of weights is stored and how a run resumes: docs/config.md (``ema_decay``).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from dagmix.algorithms import compat
from dagmix.mixing.options import WeightAveragingConfig


class WeightAverage:
    """A shadow copy of a module holding the exponential moving average of its parameters and buffers.

    Attributes:
        model: The averaged module (same class and device as the source; no gradients; in eval mode).
        decay: The EMA decay in (0, 1).
        num_updates: Number of :meth:`update` calls so far.
    """

    def __init__(self, source: torch.nn.Module, decay: float) -> None:
        """Copy ``source`` (its current weights start the average)."""
        self.decay = float(decay)
        self.model = copy.deepcopy(source)
        self.model.requires_grad_(False)
        self.model.eval()
        if hasattr(self.model, "reset"):
            self.model.reset()  # its own recurrent hidden state, starting empty
        self.num_updates = 0
        self._normalizers = normalizers(self.model)  # its module tree is fixed; their buffers are read per update

    @classmethod
    def attach(
        cls, cfg: WeightAveragingConfig, student: torch.nn.Module, optimizer: torch.optim.Optimizer
    ) -> WeightAverage | None:
        """Return the average of ``student``, updated after every ``optimizer`` step; None when ``cfg`` is off.

        Raises:
            ValueError: on rsl-rl-lib 3.x, whose one StudentTeacher module holds the student and the teacher.
        """
        if cfg.ema_decay is None:
            return None
        if compat.STUDENT_TEACHER_POLICY:
            raise ValueError(
                "ema_decay needs rsl-rl-lib >= 4 (separate student and teacher models); this is rsl-rl-lib "
                f"{compat.RSL_RL_VERSION}. Set ema_decay=None or upgrade rsl-rl-lib."
            )
        average = cls(student, cfg.ema_decay)
        optimizer.register_step_post_hook(lambda *_: average.update(student))
        return average

    @torch.no_grad()
    def update(self, source: torch.nn.Module) -> None:
        """Move the average toward ``source``'s current parameters and buffers (on their device, no host sync)."""
        avg = [p for p in self.model.parameters()]
        raw = [p.detach() for p in source.parameters()]
        for a, r in zip(self.model.buffers(), source.buffers(), strict=True):  # re-read: buffers may be rebound
            if a.is_floating_point():
                avg.append(a)
                raw.append(r)
            else:
                a.copy_(r)
        torch._foreach_lerp_(avg, raw, 1.0 - self.decay)
        match_variance_to_std(self._normalizers)
        self.num_updates += 1

    def reset_to(self, source: torch.nn.Module) -> None:
        """Restart the average at ``source``'s current weights."""
        self.model.load_state_dict(source.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Return the bookkeeping saved with a checkpoint (the averaged weights are saved as the student)."""
        return {"decay": self.decay, "num_updates": self.num_updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.num_updates = int(state.get("num_updates", 0))

    def save_into(self, saved: dict, key: str) -> None:
        """Make ``saved`` (rsl_rl's checkpoint dict) hold the average as the student, the raw weights under ``key``."""
        saved[key]["raw_student_state_dict"] = saved["student_state_dict"]
        saved[key]["ema"] = self.state_dict()
        saved["student_state_dict"] = self.model.state_dict()

    def share_distribution(self, source: torch.nn.Module) -> None:
        """Let the averaged module report ``source``'s current action distribution (``output_std`` etc.).

        rsl_rl's runner logs ``alg.get_policy().output_std`` every iteration, read from the distribution of the
        last stochastic forward pass, which only the raw (rollout) student makes. The distribution objects are
        shared by reference; no weights are touched.
        """
        for a, r in zip(self.model.modules(), source.modules(), strict=True):
            for name, value in vars(r).items():
                if isinstance(value, torch.distributions.Distribution):
                    setattr(a, name, value)


def is_normalizer(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a running normaliser.

    rsl_rl's ``EmpiricalNormalization``, found by its ``_mean``, ``_var`` and ``_std`` buffers (its module path
    differs between rsl-rl-lib versions).
    """
    names = ("_mean", "_var", "_std")
    return (
        all(isinstance(getattr(module, n, None), torch.Tensor) for n in names)
        and module._var.shape == module._std.shape
    )


def normalizers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Return the running normalisers in ``module`` (:func:`is_normalizer`): the observation's and any other."""
    return [m for m in module.modules() if is_normalizer(m)]


def match_variance_to_std(modules: list[torch.nn.Module]) -> None:
    """Set the running variance of each normaliser in ``modules`` (:func:`normalizers`) to its std squared.

    rsl_rl's ``EmpiricalNormalization`` keeps ``_mean``, ``_var`` and ``_std`` (``_std = sqrt(_var)`` after each
    update) and its forward pass reads ``_mean`` and ``_std`` only. Averaging ``_var`` and ``_std`` separately, both
    from their initial 1, leaves a ``_var`` larger than ``_std ** 2`` (after 300 steps at 0.99 about 5% of the
    initial 1 remains); a run that trains the averaged student further (``init_student``) would then recompute the
    std from that variance at its first normaliser update, rescaling those inputs by up to several times. Matching
    the variance to the std the forward pass uses keeps the averaged student's outputs exactly as they are.
    """
    for m in modules:
        m._var.copy_(m._std.square())


def repair_averaged_student(student: torch.nn.Module, state: Any) -> None:
    """Match the normalisers' variance to their std in a ``student`` just loaded from an averaged checkpoint.

    ``state`` is the checkpoint's ``"dagmix"`` entry; it holds the raw weights when ``student_state_dict`` was saved
    as an average. Averaged checkpoints written before :meth:`WeightAverage.update` matched them lack it; otherwise
    this is a no-op.
    """
    if isinstance(state, Mapping) and "raw_student_state_dict" in state:
        match_variance_to_std(normalizers(student))


def loads_student(loaded_dict: Mapping[str, Any], load_cfg: Mapping[str, Any] | None) -> bool:
    """Whether rsl_rl's ``Distillation.load`` (4.x/5.x) loads the student from ``loaded_dict`` (its default rules)."""
    if load_cfg is None:
        return not any("actor_state_dict" in key for key in loaded_dict)
    return bool(load_cfg.get("student"))


def restore_student(
    average: WeightAverage | None,
    student: torch.nn.Module,
    state: Mapping[str, Any] | None,
    resumed: bool,
    strict: bool,
) -> None:
    """After rsl_rl loaded ``student_state_dict`` into ``student``: restore the raw weights and the average.

    Args:
        average: The run's average, or None without ``ema_decay``.
        student: The raw student, holding the checkpoint's ``student_state_dict`` (an average if it was saved with
            ``ema_decay``).
        state: The checkpoint's ``"dagmix"`` entry (None for a stock rsl_rl checkpoint).
        resumed: Whether the run resumes the checkpoint's iteration.
        strict: ``load_state_dict``'s strictness.
    """
    raw = (state or {}).get("raw_student_state_dict")
    repair_averaged_student(student, state)  # what it holds now: the average, if the checkpoint was averaged
    if average is not None:
        average.reset_to(student)  # the saved student: the average, or plain weights (averaging starts there)
        if raw is not None:
            student.load_state_dict(raw, strict=strict)
            average.load_state_dict((state or {}).get("ema", {}))
    elif raw is not None and resumed:
        warnings.warn(
            "The checkpoint was trained with ema_decay; this run has none, so training continues from the raw "
            "(non-averaged) weights, to which the optimizer state belongs.",
            stacklevel=4,
        )
        student.load_state_dict(raw, strict=strict)
