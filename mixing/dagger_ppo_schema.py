"""The config schema of MixingDAggerPPO: its own keys, declared once (no rsl_rl import).

rsl_rl's PPO keys (``learning_rate``, ``clip_param``, ``entropy_coef``, ...) pass through to rsl_rl's ``PPO``.
:func:`validate_dagger_ppo` checks the keys below; MixingDAggerPPO, the Isaac Lab configclass, the mjlab dataclass,
the CLI's ``algorithm.<key>=value`` overrides and ``docs/config.md`` are derived from :class:`DAggerPPOSchema`, and
``tests/test_config_schema.py`` fails when a front end drifts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from dagmix.mixing.adaptive import AdaptiveSchedule
from dagmix.mixing.coefficients import CoefficientSchedule
from dagmix.mixing.config import SCHEDULE_KINDS, MixingConfig, resolve_mixing
from dagmix.mixing.names import did_you_mean, not_one_of
from dagmix.mixing.options import LearningRateScheduleConfig, LearningRateScheduleName
from dagmix.mixing.schema import MixingSchema, check_config_dict, check_console_and_clip

ImitationLoss = Literal["mse", "huber", "gaussian_nll"]
ImitationBalance = Literal["advisor", "fixed"]
DAggerPPOLearningRateSchedule = Literal["auto", LearningRateScheduleName]  # nested Literals flatten
DAGGER_PPO_LR_SCHEDULES: tuple[str, ...] = get_args(DAggerPPOLearningRateSchedule)
"""The values of MixingDAggerPPO's ``learning_rate_schedule``: MixingDistillation's and ``auto``."""
AUTO_DECAY = "cosine"
"""The decay ``learning_rate_schedule="auto"`` runs under a fixed learning rate."""
AUTO_DECAY_START_FRACTION = 0.67
"""The fraction of the run ``auto``'s decay holds the rate for (the measured 0.67: benchmarks/RESULTS.md)."""
IMITATION_LOSSES: tuple[str, ...] = get_args(ImitationLoss)
"""The values of ``imitation_loss`` (from its ``Literal``, declared once)."""
IMITATION_BALANCES: tuple[str, ...] = get_args(ImitationBalance)
"""The values of ``imitation_balance`` (from its ``Literal``)."""


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

    imitation_loss: ImitationLoss = "mse"
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

    imitation_balance: ImitationBalance = "advisor"
    """How imitation and PPO share each visited state. ``advisor`` (the recipe): an auxiliary copy of the actor,
    trained by imitation only, measures per state how well the student's observations let it copy the teacher,
    ``w(s) = exp(-advisor_alpha * d(s))``; the actor imitates with weight ``max(imitation_floor, w)`` and follows PPO
    with weight ``1 - w`` (ADVISOR, Weihs et al. 2021). ``fixed``: both terms at full weight on every state (rsl_rl's
    ``DaggerPPO`` loss)."""

    advisor_alpha: float = 10.0
    """Sharpness of the ``advisor`` weight; ``d(s)`` is the squared distance between the auxiliary head's mean action
    and the teacher's label, averaged over action dimensions (actions in [-1, 1]: d 0.01 gives w 0.90, d 0.25 gives
    0.08)."""

    advisor_learning_rate: float = 1e-3
    """Adam learning rate of the ``advisor`` auxiliary head (trained once per update on the rollout, in time order,
    with the algorithm's ``max_grad_norm`` and 12-step truncated backpropagation for a recurrent actor)."""

    imitation_floor: float = 0.0
    """The least imitation weight of any state under ``advisor``, in [0, 1]. 0 (the default): where the teacher
    cannot be copied the student learns from the reward alone; on ``cue_doors`` a floor of 0.03 or 0.1 slowed the
    discovery of the cue 1.5 to 2.5 times (benchmarks/RESULTS.md, "Beyond imitation")."""

    critic_warmup: float | None = 0.5
    """The hand-off from a distilled student (``init_student``): the actor's PPO terms stay off until the critic
    explains this fraction of the rollout's return variance (explained variance), then ramp in over
    ``ppo_ramp_iterations``; imitation and the critic train meanwhile. Without ``init_student`` actor and critic
    start together and there is no warm-up. None: no warm-up."""

    critic_warmup_max_iterations: int = 50
    """The runner iteration at which the warm-up ends even if ``critic_warmup`` was not reached."""

    ppo_ramp_iterations: int = 10
    """Iterations over which the PPO terms rise linearly from 0 to full weight after the warm-up."""

    min_learning_rate: float | None = None
    """The lowest learning rate. Under rsl_rl's KL-adaptive schedule (``schedule="adaptive"``): the least rate it may
    set, so that the imitation term, which moves the mean and so the KL, cannot collapse it (None: the configured
    ``learning_rate``). Under a decaying ``learning_rate_schedule`` (``auto`` under a fixed rate included): the rate
    the decay ends at (None: a tenth of ``learning_rate``, the measured 1e-3 to 1e-4). Without effect with the
    ``constant`` schedule at a fixed rate."""

    init_student_std: float | None = None
    """With ``init_student``: the action std the actor starts PPO with (distillation does not train it). None: the
    std stored in the distilled checkpoint."""

    init_critic_from_teacher: bool | None = None
    """Initialise the critic from the teacher's PPO checkpoint (its ``critic_state_dict``) when the teacher is loaded.
    None: when the checkpoint has one that fits the critic (same observations and sizes); True: required (an error
    if it does not fit); False: never."""

    learning_rate_schedule: DAggerPPOLearningRateSchedule = "auto"
    """``auto`` (default, the recipe): under a fixed rate (rsl_rl's ``schedule="fixed"``, or no ``desired_kl``) a
    ``cosine`` decay from ``learning_rate`` to ``min_learning_rate`` (None: a tenth of it) that holds the rate for the
    first ``learning_rate_decay_start_fraction`` of the run (None: 0.67), so it runs over the last third; under
    rsl_rl's KL-adaptive schedule (``schedule="adaptive"`` with a ``desired_kl``, PPO's default) ``constant``: the KL
    sets the rate, floored at ``min_learning_rate``; with ``imitation_coef`` 0 (the recipe off: rsl_rl's PPO)
    ``constant``. ``constant``: rsl_rl's ``schedule`` alone sets the rate (fixed,
    or KL-adaptive). ``linear`` or ``cosine`` (not under the KL-adaptive schedule): the rate of runner iteration
    ``it`` decays from ``learning_rate`` to ``min_learning_rate``, reached at ``learning_rate_iterations`` and kept
    after it, by the formula of MixingDistillation's key of the same name (docs/config.md); set at the start of each
    update and logged as ``Loss/learning_rate``. A function of the iteration only, so a resumed run continues it
    exactly. The advisor head keeps ``advisor_learning_rate``. Measured at 1e-3 (benchmarks/RESULTS.md, 5 seeds):
    ``auto`` ends every seed's last student on ``quadcopter_blind`` at 1.051-1.057 of the teacher's return (the
    ``constant`` rate 0.980-1.059, a cosine from the start 0.983-1.038), and is within distillation's CI where there
    is no gap (``quadcopter``, mjlab's Cartpole swing-up)."""

    learning_rate_iterations: int | None = None
    """With a decaying ``learning_rate_schedule``: the runner iteration (0-based, absolute) at which the rate reaches
    ``min_learning_rate``. None: the end of the ``learn()`` call, its start iteration plus its number of iterations
    (the run's ``max_iterations`` under rsl_rl's stock runner, which does not pass the length)."""

    learning_rate_decay_start_fraction: float | None = None
    """With a decaying ``learning_rate_schedule``: the fraction of the run during which the rate holds at
    ``learning_rate`` before it decays, in [0, 1) (0: the decay starts at once; 2/3: it runs over the last third,
    after the students have learnt at the full rate). None (default): 0.67 under ``auto``, 0 under an explicit
    ``linear`` or ``cosine``. A value where no decay runs (``constant``, or ``auto`` under the KL-adaptive schedule
    or with ``imitation_coef`` 0) is an error. On ``quadcopter_blind`` (5 seeds) a cosine to 1e-4 held for 0.67 of
    the run ended every seed's last student at 1.051-1.057 of the teacher's return, success 0.999-1.000, above every
    distillation row (benchmarks/RESULTS.md)."""


DAGGER_PPO_KEYS: tuple[str, ...] = tuple(f.name for f in fields(DAggerPPOSchema))
"""The algorithm config keys MixingDAggerPPO adds to rsl_rl's PPO keys."""


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
    imitation_balance: str = "advisor"
    advisor_alpha: float = 10.0
    advisor_learning_rate: float = 1e-3
    imitation_floor: float = 0.0
    critic_warmup: float | None = 0.5
    critic_warmup_max_iterations: int = 50
    ppo_ramp_iterations: int = 10
    min_learning_rate: float | None = None
    init_student_std: float | None = None
    init_critic_from_teacher: bool | None = None
    learning_rate_schedule: str = "auto"
    learning_rate_iterations: int | None = None
    learning_rate_decay_start_fraction: float | None = None


def kl_adaptive(schedule: str, desired_kl: float | None) -> bool:
    """Whether rsl_rl's PPO sets the rate from the KL divergence (``schedule="adaptive"`` with a ``desired_kl``)."""
    return schedule == "adaptive" and desired_kl is not None


def resolve_learning_rate_schedule(
    options: DAggerPPOOptions, learning_rate: float, adaptive: bool
) -> LearningRateScheduleConfig:
    """Return the learning-rate schedule of ``options`` for a run at ``learning_rate``.

    Args:
        options: The validated keys.
        learning_rate: The configured (base) rate.
        adaptive: Whether rsl_rl's KL-adaptive schedule sets the rate (``schedule="adaptive"`` with a ``desired_kl``).

    Raises:
        ValueError: a decay under the KL-adaptive schedule, a ``learning_rate_decay_start_fraction`` without a decay,
            or a ``min_learning_rate`` above ``learning_rate``.
    """
    kind, start = options.learning_rate_schedule, options.learning_rate_decay_start_fraction
    # why a constant rate takes no start fraction, and what would decay instead
    why = "learning_rate_schedule='constant' does not decay"
    fix = "learning_rate_schedule 'auto', 'linear' or 'cosine' under schedule='fixed'"
    if kind == "auto" and adaptive:
        kind, why = (
            "constant",
            "under rsl_rl's KL-adaptive schedule learning_rate_schedule='auto' leaves the rate to the KL",
        )
        fix = "schedule='fixed'"
    elif kind == "auto" and options.imitation_coef.always_zero():  # the recipe is off: rsl_rl's PPO, its rate too
        kind, why = "constant", "with imitation_coef 0 learning_rate_schedule='auto' keeps rsl_rl's rate"
        fix = "learning_rate_schedule 'linear' or 'cosine'"
    elif kind == "auto":
        kind = AUTO_DECAY
        start = AUTO_DECAY_START_FRACTION if start is None else start
    if kind == "constant" and start is not None:
        raise ValueError(
            f"learning_rate_decay_start_fraction={start!r} holds a decay, and {why}; leave it None, or set {fix}."
        )
    if kind != "constant" and adaptive:
        raise ValueError(
            f"learning_rate_schedule={kind!r} sets the learning rate per iteration, and rsl_rl's "
            "schedule='adaptive' (PPO's default) sets it from the KL divergence; set schedule='fixed' with a "
            "decaying learning_rate_schedule, or learning_rate_schedule='auto' (the KL's rate under 'adaptive')."
        )
    low = options.min_learning_rate
    if kind != "constant" and low is None:
        low = float(learning_rate) / 10.0
    cfg = LearningRateScheduleConfig(
        learning_rate_schedule=kind,
        min_learning_rate=0.0 if low is None else low,
        learning_rate_iterations=options.learning_rate_iterations,
        learning_rate_decay_start_fraction=0.0 if start is None else start,
    )
    cfg.check_base(learning_rate)
    return cfg


def validate_dagger_ppo(cfg: Mapping[str, Any]) -> DAggerPPOOptions:
    """Validate MixingDAggerPPO's own keys of an algorithm config dict and return them parsed.

    ``cfg`` holds only keys of :data:`DAGGER_PPO_KEYS` (a missing key takes its schema default); ``mixing`` may be a
    flat dict, a :class:`~dagmix.mixing.config.MixingConfig`, or a configclass dict holding every field (None:
    unset).

    Raises:
        ValueError: ``cfg`` is not a dict, or naming the bad key or value, the valid options and the fix.
    """
    check_config_dict(cfg, "validate_dagger_ppo()")
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
    recipe = _validate_recipe(cfg)
    return DAggerPPOOptions(
        **recipe,
        imitation_coef=imitation_coef,
        ppo_coef=ppo_coef,
        imitation_loss=str(loss),
        mixing=mixing,
        init_student=init_student,
        teacher_action_clip=clip,
        phase_console_output=console,
    )


def _number(key: str, value: Any, low: float, high: float = math.inf, *, optional: bool = False) -> float | None:
    """Return ``value`` as a float in [low, high] (or None where allowed); raise naming the key otherwise."""
    if value is None and optional:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or not low <= value <= high:
        bound = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
        raise ValueError(f"{key}={value!r} must be a finite number {bound}{' or None' if optional else ''}.")
    return float(value)


def _integer(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key}={value!r} must be an integer >= {low}.")
    return int(value)


def _validate_recipe(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the teacher-guided recipe's keys (imitation balance, warm-up, hand-off)."""
    v = {f.name: cfg.get(f.name, f.default) for f in fields(DAggerPPOSchema)}
    if v["imitation_balance"] not in IMITATION_BALANCES:
        raise ValueError(not_one_of("imitation_balance", v["imitation_balance"], IMITATION_BALANCES))
    teacher_critic = v["init_critic_from_teacher"]
    if teacher_critic is not None and not isinstance(teacher_critic, bool):
        raise ValueError(f"init_critic_from_teacher={teacher_critic!r} must be True, False or None.")
    std = _number("init_student_std", v["init_student_std"], 0.0, optional=True)
    if std is not None and std <= 0.0:
        raise ValueError(f"init_student_std={std!r} must be > 0 (or None: the distilled checkpoint's std).")
    kind, end = v["learning_rate_schedule"], v["learning_rate_iterations"]
    start = v["learning_rate_decay_start_fraction"]
    if kind not in DAGGER_PPO_LR_SCHEDULES:
        raise ValueError(not_one_of("learning_rate_schedule", kind, DAGGER_PPO_LR_SCHEDULES))
    lr = LearningRateScheduleConfig(  # their checks, once ("auto" is checked as its decay)
        learning_rate_schedule=AUTO_DECAY if kind == "auto" else kind,
        learning_rate_iterations=end,
        learning_rate_decay_start_fraction=0.0 if start is None else start,
    )
    return {
        "imitation_balance": str(v["imitation_balance"]),
        "advisor_alpha": _number("advisor_alpha", v["advisor_alpha"], 0.0),
        "advisor_learning_rate": _number("advisor_learning_rate", v["advisor_learning_rate"], 0.0),
        "imitation_floor": _number("imitation_floor", v["imitation_floor"], 0.0, 1.0),
        "critic_warmup": _number("critic_warmup", v["critic_warmup"], -math.inf, 1.0, optional=True),
        "critic_warmup_max_iterations": _integer("critic_warmup_max_iterations", v["critic_warmup_max_iterations"], 0),
        "ppo_ramp_iterations": _integer("ppo_ramp_iterations", v["ppo_ramp_iterations"], 1),
        "min_learning_rate": _number("min_learning_rate", v["min_learning_rate"], 0.0, optional=True),
        "learning_rate_schedule": kind,
        "learning_rate_iterations": end,
        "learning_rate_decay_start_fraction": None if start is None else lr.learning_rate_decay_start_fraction,
        "init_student_std": std,
        "init_critic_from_teacher": teacher_critic,
    }
