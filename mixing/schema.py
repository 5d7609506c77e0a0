"""The one config schema of MixingDistillation: typed dataclasses, a docstring per field (no rsl_rl import).

Every option dagmix adds to rsl_rl's algorithm config is declared once, here or in :mod:`.options` (the sections
and flat keys of the training extensions). :func:`validate` checks an algorithm config dict (rsl_rl's own keys pass
through); the Isaac Lab configclasses, the mjlab dataclasses, the CLI's ``key=value`` overrides and
``docs/config.md`` (:mod:`.reference`) are derived from these classes, and ``tests/test_config_schema.py`` fails
when a front end drifts.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from dagmix.mixing.config import Assignment, Granularity, MixingConfig, ScheduleName, resolve_mixing
from dagmix.mixing.names import closest
from dagmix.mixing.options import (
    LearningRateKeys,
    LearningRateScheduleConfig,
    LossWeighting,
    ReplayConfig,
    WeightAveragingConfig,
    WeightAveragingKeys,
)


@dataclass
class MixingSchema:
    """The ``mixing`` section: the beta schedule (kind and parameters), granularity, assignment, seed.

    A parameter left at None is not passed to the schedule (its default applies); a parameter the chosen schedule
    does not take must be None. Whenever beta is exactly 0 or 1, every env follows it at once, whatever the
    granularity. A switch beyond the run's end (``max_iterations``) is legal (runs are resumed in chunks) but warns
    with both numbers.
    """

    schedule: ScheduleName | None = None
    """A schedule kind or preset (the values listed in the type). None: no schedule set here; the two-stage keys
    decide (``two_stage`` if ``use_two_stage_training``, else ``student_only``, stock rsl_rl behaviour)."""

    phase1_iterations: int | None = None
    """``step`` / ``two_stage``: teacher-driven iterations before the switch (beta 1 before, 0 from then on)."""

    beta: float | None = None
    """``constant``: the teacher probability in [0, 1]."""

    start: float | None = None
    """``linear`` / ``cosine`` / ``exponential``: beta at iteration 0 (default 1.0)."""

    end: float | None = None
    """``linear`` / ``cosine``: beta after ``iterations`` iterations (default 0.0)."""

    iterations: int | None = None
    """``linear`` / ``cosine`` / ``dagger_linear``: length of the ramp in iterations (default 1)."""

    decay: float | None = None
    """``exponential`` / ``dagger_exp``: beta_i = start * decay**i (``dagger_exp`` default 0.95)."""

    cutoff: float | None = None
    """``exponential`` / ``dagger_exp``: beta is 0 once below this value (default 0.01)."""

    points: list[list[float]] | None = None
    """``piecewise_linear``: ``[[iteration, beta], ...]`` with strictly increasing iterations."""

    threshold: float | None = None
    """``loss_triggered``: behaviour loss below which beta is lowered (required for that schedule)."""

    deadline: int | None = None
    """``loss_triggered`` (required) / ``discrepancy_gated`` / ``return_ratio``: beta is 0 from this iteration on."""

    patience: int | None = None
    """``loss_triggered``: iterations the loss must stay below ``threshold`` before beta is lowered (default 5)."""

    step: float | None = None
    """``loss_triggered``: how much beta is lowered each time (default: all the way to 0)."""

    switch_back_threshold: float | None = None
    """``loss_triggered``: loss above which beta is raised again (default None: never)."""

    initial_beta: float | None = None
    """``loss_triggered``: beta at the start (default 1.0)."""

    gain: float | None = None
    """``discrepancy_gated``: beta = gain x the smoothed normalized discrepancy (default 1.0)."""

    probe_fraction: float | None = None
    """``discrepancy_gated`` / ``return_ratio``: envs always driven by the student, to measure it (default 0.1)."""

    smoothing: float | None = None
    """``discrepancy_gated`` / ``return_ratio``: EMA factor of the measured signal (default 0.8)."""

    min_beta: float | None = None
    """``discrepancy_gated`` / ``return_ratio``: beta below this becomes 0 (default 0.05)."""

    monotone: bool | None = None
    """``discrepancy_gated`` / ``return_ratio``: beta never rises again (default True)."""

    target: float | None = None
    """``return_ratio``: student-to-teacher return ratio at which beta reaches 0 (default 0.95)."""

    granularity: Granularity = "step"
    """When an env's teacher/student draw is renewed: every ``step``, at each ``episode`` end (trajectory-level
    mixing, as in the DAgger paper), or each ``iteration``."""

    assignment: Assignment = "random"
    """``random``: independent Bernoulli(beta) per env; ``quota``: exactly floor(beta * num_envs + 0.5) teacher envs
    per redraw (not with ``granularity='episode'``)."""

    seed: int | None = None
    """Seed of the per-env mask generator; None derives it from the run's ``seed``."""


@dataclass
class AlgorithmSchema(LearningRateKeys, WeightAveragingKeys):
    """The keys MixingDistillation adds to rsl_rl's ``Distillation`` config (rsl_rl's own keys pass through).

    The learning-rate and weight-averaging keys are top-level keys too; their sections follow below (``AlgorithmSchema``
    inherits them from ``LearningRateKeys`` and ``WeightAveragingKeys`` in ``dagmix/mixing/options.py``).
    """

    use_two_stage_training: bool | None = None
    """The two-stage patch's switch. True: the teacher's actions drive the envs for ``phase1_iterations``
    iterations, then the student's (schedule ``two_stage``). False or None: ``mixing`` decides; without a mixing
    schedule the student always drives, as in stock rsl_rl."""

    phase1_iterations: int | None = None
    """The two-stage patch's teacher-driven iterations (the runner's 0-based iteration ``phase1_iterations`` is the
    first student-driven one). Read only when ``use_two_stage_training`` is True (given alone: a warning)."""

    mixing: MixingSchema = field(default_factory=MixingSchema)
    """The beta-mixing schedule; see the ``mixing`` section."""

    phase_console_output: bool = True
    """Print the phase lines every iteration and the switch banner once (rank 0 only)."""

    teacher_action_clip: float | None = None
    """If set, the teacher action the student learns is clamped to [-clip, clip] (e.g. the env's action bounds);
    the executed action is unchanged. None (default) keeps the raw teacher action, as rsl_rl does."""

    loss_weighting: LossWeighting = field(default_factory=LossWeighting)
    """Who-drove-aware behaviour-loss weights; all 1 (default) is rsl_rl's plain mean."""

    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Bounded aggregation of past rollouts; ``iterations=0`` (default) is off."""


SECTIONS: dict[str, type] = {
    "algorithm": AlgorithmSchema,
    "mixing": MixingSchema,
    "loss_weighting": LossWeighting,
    "replay": ReplayConfig,
}
"""Every schema class by the config section it describes (``algorithm``: the top-level keys)."""

ALGORITHM_KEYS: tuple[str, ...] = tuple(f.name for f in fields(AlgorithmSchema))
"""The algorithm config keys dagmix adds."""


@dataclass
class AlgorithmOptions:
    """The validated algorithm keys, as the algorithm uses them."""

    mixing: MixingConfig
    phase_console_output: bool
    teacher_action_clip: float | None
    loss_weighting: LossWeighting
    replay: ReplayConfig
    lr_schedule: LearningRateScheduleConfig
    ema: WeightAveragingConfig


def check_console_and_clip(cfg: Mapping[str, Any]) -> tuple[bool, float | None]:
    """Return ``cfg``'s ``phase_console_output`` and ``teacher_action_clip``, checked (keys of both algorithms)."""
    console = cfg.get("phase_console_output", True)
    if not isinstance(console, bool):
        raise ValueError(f"phase_console_output={console!r} must be True or False.")
    clip = cfg.get("teacher_action_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
        raise ValueError(f"teacher_action_clip={clip!r} must be a positive number or None.")
    return console, None if clip is None else float(clip)


def check_config_dict(cfg: Any, what: str) -> None:
    """Raise ValueError unless ``cfg`` is a mapping (a dict of algorithm keys); ``what`` names the validator."""
    if not isinstance(cfg, Mapping):
        raise ValueError(
            f"{what} takes a dict of algorithm keys (an empty dict for the defaults), got {type(cfg).__name__}: "
            f"{cfg!r}."
        )


def validate(cfg: Mapping[str, Any]) -> AlgorithmOptions:
    """Validate dagmix's keys of an algorithm config dict and return them parsed (every rule is checked here).

    ``cfg`` holds only dagmix's keys (:data:`ALGORITHM_KEYS`); sections may be dicts or their dataclasses, and
    configclass dicts that hold every field (None: unset) are accepted.

    Raises:
        ValueError: ``cfg`` is not a dict, or naming the bad key or value, the valid options and the fix.
    """
    check_config_dict(cfg, "validate()")
    for key in cfg:
        if key not in ALGORITHM_KEYS:
            match = closest(key, ALGORITHM_KEYS)
            raise ValueError(f"Unknown algorithm key {key!r}" + (f"; did you mean {match!r}?" if match else "."))
    use_two_stage = cfg.get("use_two_stage_training")
    mixing = resolve_mixing(cfg.get("mixing"), use_two_stage, cfg.get("phase1_iterations"))
    console, clip = check_console_and_clip(cfg)
    return AlgorithmOptions(
        mixing=mixing,
        phase_console_output=console,
        teacher_action_clip=clip,
        loss_weighting=LossWeighting.from_dict(cfg.get("loss_weighting")),
        replay=ReplayConfig.from_dict(cfg.get("replay")),
        lr_schedule=LearningRateScheduleConfig.from_dict(cfg),
        ema=WeightAveragingConfig(cfg.get("ema_decay")),
    )


def to_dict(obj: Any) -> dict[str, Any]:
    """Return a schema dataclass (or configclass) as rsl_rl's nested config dict."""
    return dataclasses.asdict(obj)


def field_docs(cls: type) -> dict[str, str]:
    """Return the docstring under each field of a dataclass and of its dataclass bases (read from their source)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):  # the order of dataclasses.fields(): the bases' fields first
        if base is object or not dataclasses.is_dataclass(base):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(base))).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if (
                    isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)
                ):
                    docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def lookup(path: str, root: type | None = None) -> tuple[bool, Any]:
    """Return (True, default) if ``path`` (e.g. ``mixing.decay``, ``replay.iterations``) is a schema key.

    Args:
        path: Dotted key below ``algorithm``.
        root: The algorithm's schema class: :class:`AlgorithmSchema` (default, MixingDistillation) or
            :class:`~dagmix.mixing.dagger_ppo_schema.DAggerPPOSchema`.
    """
    parts = path.split(".")
    cls: type = root or AlgorithmSchema
    for depth, part in enumerate(parts):
        by_name = {f.name: f for f in fields(cls)}
        if part not in by_name:
            return False, None
        f = by_name[part]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if depth == len(parts) - 1:
            return True, to_dict(default) if dataclasses.is_dataclass(default) else default
        if not dataclasses.is_dataclass(default):
            return False, None
        cls = type(default)
    return False, None


def schema_paths(root: type | None = None) -> list[str]:
    """Return every leaf key of the schema as a dotted path below ``algorithm`` (``mixing.decay``, ...)."""
    out: list[str] = []
    for f in fields(root or AlgorithmSchema):
        section = SECTIONS.get(f.name)
        out += [f"{f.name}.{g.name}" for g in fields(section)] if section else [f.name]
    return out
