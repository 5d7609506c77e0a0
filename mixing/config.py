"""The ``mixing`` config: schedule kinds and presets by name, granularity, assignment, seed."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from dagmix.mixing.adaptive import DiscrepancyGatedSchedule, LossTriggeredSchedule, ReturnRatioSchedule
from dagmix.mixing.names import closest, not_one_of
from dagmix.mixing.schedules import (
    BetaSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseLinearSchedule,
    StepSchedule,
)

Granularity = Literal["step", "episode", "iteration"]
Assignment = Literal["random", "quota"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
ASSIGNMENTS: tuple[str, ...] = get_args(Assignment)

SCHEDULE_KINDS: dict[str, type[BetaSchedule]] = {
    "constant": ConstantSchedule,
    "step": StepSchedule,
    "linear": LinearSchedule,
    "exponential": ExponentialSchedule,
    "cosine": CosineSchedule,
    "piecewise_linear": PiecewiseLinearSchedule,
    "loss_triggered": LossTriggeredSchedule,
    "discrepancy_gated": DiscrepancyGatedSchedule,
    "return_ratio": ReturnRatioSchedule,
}


def _two_stage(phase1_iterations: int) -> BetaSchedule:
    """Teacher drives for ``phase1_iterations`` iterations, then the student (the two-stage patch's training)."""
    return StepSchedule(phase1_iterations)


def _student_only() -> BetaSchedule:
    """Beta 0: the student always drives (stock rsl_rl Distillation)."""
    return ConstantSchedule(0.0)


def _teacher_only() -> BetaSchedule:
    """Beta 1: the teacher always drives (behaviour cloning)."""
    return ConstantSchedule(1.0)


def _dagger_first() -> BetaSchedule:
    """Beta 1 in iteration 0 only, then 0 (the DAgger paper's first-iteration expert rollout)."""
    return StepSchedule(1)


def _dagger_linear(iterations: int) -> BetaSchedule:
    """Beta falls linearly from 1 to 0 over ``iterations`` iterations."""
    return LinearSchedule(start=1.0, end=0.0, iterations=iterations)


def _dagger_exp(decay: float = 0.95, cutoff: float = 0.01) -> BetaSchedule:
    """Beta_i = decay**i (the DAgger paper's p**i), 0 once below ``cutoff``."""
    return ExponentialSchedule(decay=decay, start=1.0, cutoff=cutoff)


PRESETS: dict[str, Callable[..., BetaSchedule]] = {
    "two_stage": _two_stage,
    "student_only": _student_only,
    "teacher_only": _teacher_only,
    "dagger_first": _dagger_first,
    "dagger_linear": _dagger_linear,
    "dagger_exp": _dagger_exp,
}


def schedule_names() -> list[str]:
    """Return every name ``mixing.schedule`` accepts: kinds first, then presets."""
    return [*SCHEDULE_KINDS, *PRESETS]


ScheduleName = Literal[tuple(schedule_names())]  # type: ignore[valid-type]  # the names live in the registry only
"""The values of ``mixing.schedule``: the schedule kinds, then the presets (the ``Literal`` of the schema's field)."""


def check_drawing(granularity: Any, assignment: Any, section: str = "") -> None:
    """Raise ValueError unless ``granularity`` and ``assignment`` are valid and may be combined.

    Args:
        granularity: When a draw is renewed (:data:`GRANULARITIES`).
        assignment: How envs are drawn (:data:`ASSIGNMENTS`).
        section: The config section named in errors (``mixing``), or ``""`` for plain argument names.
    """
    key = f"{section}." if section else ""
    if granularity not in GRANULARITIES:
        raise ValueError(not_one_of(f"{key}granularity", granularity, GRANULARITIES))
    if assignment not in ASSIGNMENTS:
        raise ValueError(not_one_of(f"{key}assignment", assignment, ASSIGNMENTS))
    if assignment == "quota" and granularity == "episode":
        raise ValueError(
            f"{key}assignment='quota' cannot be combined with granularity='episode': envs end their episodes at "
            "different times, so no exact quota holds. Use assignment='random' with granularity='episode', or "
            "quota with granularity='step' or 'iteration'."
        )


def _params_of(builder: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """Return (all parameter names, required parameter names) of a schedule class or preset function."""
    sig = inspect.signature(builder)
    names = [p for p in sig.parameters if p != "self"]
    required = [p for p in names if sig.parameters[p].default is inspect.Parameter.empty]
    return names, required


def schedule_parameter_names() -> list[str]:
    """Return every schedule parameter name that any kind or preset takes (e.g. ``phase1_iterations``, ``decay``)."""
    names: dict[str, None] = {}
    for builder in [*SCHEDULE_KINDS.values(), *PRESETS.values()]:
        names.update(dict.fromkeys(_params_of(builder)[0]))
    return list(names)


def _builder(name: Any, what: str) -> Callable[..., BetaSchedule]:
    """Return the class or preset function of schedule ``name``; ``what`` names the setting in the error."""
    builder = (SCHEDULE_KINDS.get(name) or PRESETS.get(name)) if isinstance(name, str) else None
    if builder is None:
        raise ValueError(not_one_of(what, name, schedule_names()))
    return builder


def schedule_parameters(name: str, *, what: str = "mixing.schedule") -> list[str]:
    """Return the parameter names that schedule kind or preset ``name`` takes (e.g. ``["phase1_iterations"]``).

    Args:
        name: Schedule kind or preset.
        what: The setting named in the error message (e.g. ``--schedule`` for a command-line flag).

    Raises:
        ValueError: ``name`` is not a schedule kind or preset; the message lists the valid ones.
    """
    return _params_of(_builder(name, what))[0]


def drop_unset(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a ``mixing`` dict without its unset entries, as written by configs that store every field.

    Isaac Lab configclasses convert to dicts holding every field, unset ones as None. Here ``schedule=None``
    means "no schedule configured" (returns None); a schedule parameter equal to None counts as not given.

    Raises:
        ValueError: ``schedule`` is None but a schedule parameter is set (it would be silently ignored).
    """
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"mixing must be a dict, got {type(cfg).__name__}: {cfg!r}.")
    params = set(schedule_parameter_names())
    out = {k: v for k, v in cfg.items() if not (k in params and v is None)}
    if "schedule" in out and out["schedule"] is None:
        stray = sorted(k for k in out if k in params)
        if stray:
            raise ValueError(
                f"mixing sets {', '.join(f'{k}={out[k]!r}' for k in stray)} but mixing.schedule is None, so they "
                f"would be ignored; set mixing.schedule to one of {', '.join(schedule_names())}."
            )
        return None
    return out


def build_schedule(name: str, *, section: str = "mixing", **params: Any) -> BetaSchedule:
    """Build a schedule from a kind (``constant``, ``step``, ...) or a preset name and its parameters.

    Args:
        name: Schedule kind or preset.
        section: Config section named in error messages (``mixing``, or e.g. ``imitation_coef``).
        **params: The schedule's parameters.

    Raises:
        ValueError: unknown name, unknown or missing parameters, or parameter values out of range.
    """
    builder = _builder(name, f"{section}.schedule")
    names, required = _params_of(builder)
    unknown = [k for k in params if k not in names]
    if unknown:
        valid = ", ".join(names) if names else "none"
        raise ValueError(f"Unknown key(s) {unknown} for {section}.schedule={name!r}; its parameters are: {valid}.")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"{section}.schedule={name!r} needs {missing} (e.g. {section}={{'schedule': {name!r}, ...}}).")
    return builder(**params)


@dataclass
class MixingConfig:
    """Validated form of the algorithm's ``mixing`` dict."""

    schedule: str = "student_only"
    """A schedule kind or preset (one of :func:`schedule_names`)."""

    schedule_params: dict[str, Any] = field(default_factory=dict)
    """The schedule's parameters (in the dict form they sit beside ``schedule``)."""

    granularity: Granularity = "step"
    """When an env's teacher/student draw is renewed: every ``step``, at each ``episode`` end, or each ``iteration``."""

    assignment: Assignment = "random"
    """``random``: independent Bernoulli(beta) per env; ``quota``: exactly floor(beta * num_envs + 0.5) teacher envs."""

    seed: int | None = None
    """Seed of the mask generator; None derives it from the train config's ``seed``."""

    def __post_init__(self) -> None:
        """Validate every field; errors name the value and the valid options."""
        check_drawing(self.granularity, self.assignment, "mixing")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"mixing.seed={self.seed!r} must be an int or None.")
        if self.seed is not None and not -(2**63) <= self.seed < 2**63:  # torch's generator takes 64 bits
            raise ValueError(f"mixing.seed={self.seed} does not fit 64 bits; use an int in [-2**63, 2**63).")
        schedule = self.build_schedule()  # validates the schedule name and its parameters
        need = schedule.needs_granularity
        if need is not None and self.granularity != need:
            raise ValueError(
                f"mixing.schedule={self.schedule!r} needs mixing.granularity={need!r} (got {self.granularity!r}): "
                "it compares episodes driven by one driver from start to end. Set mixing.granularity="
                f"{need!r}."
            )

    def build_schedule(self) -> BetaSchedule:
        """Return a fresh schedule object for this config."""
        return build_schedule(self.schedule, **self.schedule_params)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> MixingConfig:
        """Parse the flat ``mixing`` dict; schedule parameters sit beside ``schedule``. Does not modify ``cfg``."""
        if isinstance(cfg, MixingConfig):
            return cfg
        if not isinstance(cfg, Mapping):
            raise ValueError(f"mixing must be a dict, got {type(cfg).__name__}: {cfg!r}.")
        if "schedule" not in cfg:
            raise ValueError(
                f"mixing={dict(cfg)!r} has no 'schedule'; name one of {', '.join(schedule_names())}, "
                "e.g. {'schedule': 'two_stage', 'phase1_iterations': 500}."
            )
        own = {f.name for f in fields(cls)} - {"schedule_params"}
        name = cfg["schedule"]
        builder = SCHEDULE_KINDS.get(name) or PRESETS.get(name) if isinstance(name, str) else None
        schedule_keys = _params_of(builder)[0] if builder is not None else []
        params = {k: v for k, v in cfg.items() if k not in own}
        unknown = [k for k in params if k not in schedule_keys]
        if builder is not None and unknown:
            valid = sorted(own) + schedule_keys
            raise ValueError(
                f"Unknown key(s) {unknown} in mixing for schedule={name!r}; valid keys: {', '.join(valid)}."
                + "".join(f" {k!r}: did you mean {m!r}?" for k in unknown if (m := closest(k, valid)))
            )
        return cls(
            schedule=name,
            schedule_params=params,
            **{k: cfg[k] for k in own - {"schedule"} if k in cfg},
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the flat dict form accepted by :meth:`from_dict`."""
        out: dict[str, Any] = {"schedule": self.schedule, **self.schedule_params}
        out.update(granularity=self.granularity, assignment=self.assignment, seed=self.seed)
        return out


def resolve_mixing(
    mixing: Mapping[str, Any] | MixingConfig | None,
    use_two_stage_training: bool | None,
    phase1_iterations: int | None,
) -> MixingConfig:
    """Turn the algorithm config's mixing keys (``mixing`` and the two-stage keys) into a validated MixingConfig."""
    if isinstance(mixing, Mapping):
        mixing = drop_unset(mixing)  # configclass dicts hold every field: None means unset
    if use_two_stage_training not in (True, False, None):
        raise ValueError(f"use_two_stage_training={use_two_stage_training!r} must be True or False.")
    if use_two_stage_training is None and phase1_iterations is not None:  # given alone: ignored, say so
        _warn_phase1_ignored(mixing, phase1_iterations)
    if use_two_stage_training:
        if mixing:
            raise ValueError(
                "Both a non-empty 'mixing' and use_two_stage_training=True were given; they configure the same "
                "thing. Keep one: mixing={'schedule': 'two_stage', 'phase1_iterations': N} or the two-stage keys "
                "use_two_stage_training=True with phase1_iterations=N."
            )
        if phase1_iterations is None:
            raise ValueError("use_two_stage_training=True needs phase1_iterations (e.g. phase1_iterations=500).")
        return MixingConfig.from_dict({"schedule": "two_stage", "phase1_iterations": phase1_iterations})
    if not mixing:
        return MixingConfig(schedule="student_only")
    return MixingConfig.from_dict(mixing)


def _warn_phase1_ignored(mixing: Mapping[str, Any] | MixingConfig | None, phase1_iterations: int) -> None:
    """Warn that a top-level ``phase1_iterations`` given without ``use_two_stage_training`` is not used.

    Only when ``use_two_stage_training`` is not given at all: config front ends (Isaac Lab's configclass) always
    pass both keys, with ``use_two_stage_training=False`` meaning "mixing decides".
    """
    own = mixing.get("phase1_iterations") if isinstance(mixing, Mapping) else None
    if own is None and isinstance(mixing, MixingConfig):
        own = mixing.schedule_params.get("phase1_iterations")
    if own is not None:
        why = f"the mixing dict sets its own phase1_iterations={own}, which is used"
    else:
        why = (
            "it is read only with use_two_stage_training=True; set that, or use "
            f"mixing={{'schedule': 'two_stage', 'phase1_iterations': {phase1_iterations}}}"
        )
    warnings.warn(f"phase1_iterations={phase1_iterations} is ignored: {why}.", stacklevel=5)
