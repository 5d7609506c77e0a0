"""The config schema of MixingDAggerPPO: its own keys, declared once (no rsl_rl import).

rsl_rl's PPO keys (``learning_rate``, ``clip_param``, ``entropy_coef``, ...) pass through to rsl_rl's ``PPO``.
:func:`validate_dagger_ppo` checks the keys below; MixingDAggerPPO, the Isaac Lab configclass, the mjlab dataclass,
the CLI's ``algorithm.<key>=value`` overrides and ``docs/config.md`` are derived from :class:`DAggerPPOSchema`, and
``tests/test_config_schema.py`` fails when a front end drifts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from dagmix.mixing.adaptive import AdaptiveSchedule
from dagmix.mixing.coefficients import CoefficientSchedule
from dagmix.mixing.config import SCHEDULE_KINDS, MixingConfig, resolve_mixing
from dagmix.mixing.names import did_you_mean, not_one_of
from dagmix.mixing.schema import MixingSchema, check_console_and_clip

IMITATION_LOSSES: tuple[str, ...] = ("mse", "huber", "gaussian_nll")
"""The values of ``imitation_loss`` (the ``Literal`` of its field; a test checks they agree)."""


@dataclass
class DAggerPPOSchema:
    """The keys MixingDAggerPPO adds to rsl_rl's ``PPO`` config (rsl_rl's own PPO keys pass through)."""

    imitation_coef: float | dict[str, Any] = 1.0
    """Weight of the imitation loss per iteration: a number >= 0, or a schedule dict with the kinds of ``mixing``
    (fixed ones only) and an optional ``scale``, e.g. ``{"schedule": "linear", "start": 1.0, "end": 0.0,
    "iterations": 300}``; the value is ``scale * schedule(iteration)``, so it may exceed 1."""

    ppo_coef: float | dict[str, Any] = 1.0
    """Weight of the actor's PPO terms (clipped surrogate and entropy bonus), same forms as ``imitation_coef``; 0 is
    pure DAgger. The critic's value loss is always trained."""

    imitation_loss: Literal["mse", "huber", "gaussian_nll"] = "mse"
    """``mse`` or ``huber`` between the student's mean action and the teacher's action, or ``gaussian_nll``: minus the
    student's log-likelihood of the teacher's action (trains the std too)."""

    mixing: MixingSchema = field(default_factory=MixingSchema)
    """Who drives the envs (beta), exactly as for MixingDistillation; adaptive kinds are not supported here. None
    (no schedule): the student always drives."""

    init_student: str | None = None
    """Path of a distillation checkpoint whose ``student_state_dict`` initialises the actor (the student)."""

    teacher_action_clip: float | None = None
    """If set, the imitation label is clamped to [-clip, clip]; the executed action is unchanged. None (default)
    keeps the raw teacher action."""

    phase_console_output: bool = True
    """Print the phase lines and the coefficients every iteration and the switch banner once (rank 0 only)."""


DAGGER_PPO_KEYS: tuple[str, ...] = tuple(f.name for f in fields(DAggerPPOSchema))
"""The algorithm config keys MixingDAggerPPO adds to rsl_rl's PPO keys."""

DAGGER_PPO_SECTIONS: dict[str, type] = {"dagger_ppo": DAggerPPOSchema}
"""The schema classes of MixingDAggerPPO's config by section (its ``mixing`` is :class:`MixingSchema`)."""


@dataclass
class DAggerPPOOptions:
    """The validated keys of MixingDAggerPPO, as the algorithm uses them."""

    imitation_coef: CoefficientSchedule
    ppo_coef: CoefficientSchedule
    imitation_loss: str
    mixing: MixingConfig
    init_student: str | None
    teacher_action_clip: float | None
    phase_console_output: bool


def validate_dagger_ppo(cfg: Mapping[str, Any]) -> DAggerPPOOptions:
    """Validate MixingDAggerPPO's own keys of an algorithm config dict and return them parsed.

    ``cfg`` holds only keys of :data:`DAGGER_PPO_KEYS` (a missing key takes its schema default); ``mixing`` may be a
    flat dict, a :class:`~dagmix.mixing.config.MixingConfig`, or a configclass dict holding every field (None:
    unset).

    Raises:
        ValueError: naming the bad key or value, the valid options and the fix.
    """
    for key in cfg:
        if key not in DAGGER_PPO_KEYS:
            raise ValueError(
                f"Unknown algorithm key {key!r} for MixingDAggerPPO; its keys: {', '.join(DAGGER_PPO_KEYS)}."
                + did_you_mean(key, DAGGER_PPO_KEYS, cutoff=0.7)
            )
    loss = cfg.get("imitation_loss", "mse")
    if loss not in IMITATION_LOSSES:
        raise ValueError(not_one_of("imitation_loss", loss, IMITATION_LOSSES))
    console, clip = check_console_and_clip(cfg)
    init_student = cfg.get("init_student")
    if init_student is not None and not isinstance(init_student, str):
        raise ValueError(f"init_student={init_student!r} must be a checkpoint path (str) or None.")
    imitation_coef = CoefficientSchedule.from_config("imitation_coef", cfg.get("imitation_coef", 1.0))
    ppo_coef = CoefficientSchedule.from_config("ppo_coef", cfg.get("ppo_coef", 1.0))
    mixing = resolve_mixing(cfg.get("mixing"), False, None)
    kind = SCHEDULE_KINDS.get(mixing.schedule)
    if kind is not None and issubclass(kind, AdaptiveSchedule):
        raise ValueError(
            f"mixing.schedule={mixing.schedule!r} is adaptive; MixingDAggerPPO supports the fixed kinds "
            "and presets (e.g. 'linear', 'two_stage', 'dagger_exp'). Use MixingDistillation for adaptive ones."
        )
    return DAggerPPOOptions(
        imitation_coef=imitation_coef,
        ppo_coef=ppo_coef,
        imitation_loss=str(loss),
        mixing=mixing,
        init_student=init_student,
        teacher_action_clip=clip,
        phase_console_output=console,
    )
