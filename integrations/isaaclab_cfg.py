"""Isaac Lab configclasses for dagmix's MixingDistillation (the two-stage keys and the mixing schedule).

Use :class:`RslRlMixingDistillationAlgorithmCfg` as the ``algorithm`` of an Isaac Lab
``RslRlDistillationRunnerCfg``; ``isaaclab train`` then runs ``dagmix.algorithms:MixingDistillation`` under rsl_rl's
stock ``DistillationRunner``. Isaac Lab converts the config with its ``to_dict``; MixingDistillation turns that dict
into a :class:`~dagmix.mixing.MixingConfig` (the one conversion point, also used here to validate at construction).
"""

from __future__ import annotations

import importlib
from typing import Literal

from dagmix.algorithms.ema import WeightAveragingConfig
from dagmix.algorithms.lr_schedule import LearningRateScheduleConfig
from dagmix.algorithms.training_options import LossWeighting, ReplayConfig
from dagmix.mixing.config import MixingConfig

_INSTALL_HINT = (
    "dagmix.integrations.isaaclab_cfg needs Isaac Lab 3.0 (the packages isaaclab and isaaclab_rl), which is not "
    "installed in this environment. Install it into a Python 3.12 environment with "
    "`pip install 'dagmix[isaaclab]'` (or `pip install isaaclab==3.0.0`); see the README section "
    "'Using dagmix with Isaac Lab'."
)

try:
    from isaaclab.utils import configclass
    from isaaclab.utils.dict import class_to_dict
    from isaaclab_rl.rsl_rl import RslRlDistillationAlgorithmCfg
except ModuleNotFoundError as err:  # only a missing Isaac Lab is turned into the install hint
    if err.name is None or not err.name.split(".")[0].startswith("isaaclab"):
        raise
    raise ModuleNotFoundError(_INSTALL_HINT, name=err.name) from err

MIXING_DISTILLATION_CLASS_NAME = "dagmix.algorithms:MixingDistillation"
"""The rsl_rl ``class_name`` of dagmix's algorithm; rsl_rl resolves it and passes the other fields as kwargs."""


@configclass
class MixingCfg:
    """The ``mixing`` sub-config: beta schedule (kind and parameters), granularity, assignment, seed.

    It converts to the flat dict of the README's "Keys of mixing" table. Schedule parameters left at None are not
    passed to the schedule (its defaults apply); ``schedule=None`` means no schedule is set here.
    """

    schedule: str | None = None
    """Schedule kind (``constant``, ``step``, ``linear``, ``exponential``, ``cosine``, ``piecewise_linear``) or preset
    (``two_stage``, ``student_only``, ``teacher_only``, ``dagger_first``, ``dagger_linear``, ``dagger_exp``).
    None (default): no schedule here; the two-stage patch's ``use_two_stage_training`` decides (``two_stage`` if
    True, else ``student_only``, stock rsl_rl behaviour). Setting it while ``use_two_stage_training=True`` is an
    error."""

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

    granularity: Literal["step", "episode", "iteration"] = "step"
    """When an env's teacher/student draw is renewed: every ``step``, at each ``episode`` end (trajectory-level
    mixing, as in the DAgger paper), or each ``iteration``."""

    assignment: Literal["random", "quota"] = "random"
    """``random``: independent Bernoulli(beta) per env; ``quota``: exactly floor(beta * num_envs + 0.5) teacher envs
    per redraw (not with ``granularity='episode'``)."""

    seed: int | None = None
    """Seed of the per-env mask generator; None derives it from the run's ``seed``."""


@configclass
class LossWeightingCfg:
    """The ``loss_weighting`` section: per-sample behaviour-loss weights by who drove and by episode outcome."""

    teacher_driven: float = 1.0
    """Weight of samples where the teacher drove."""

    student_driven: float = 1.0
    """Weight of samples where the student drove."""

    drop_teacher_driven_after: int | None = None
    """From this iteration on, teacher-driven samples get weight 0 (None: never)."""

    failed_episode: float = 1.0
    """Extra factor for samples of episodes that ended by termination (not time-out) within the rollout."""


@configclass
class ReplayCfg:
    """The ``replay`` section: bounded DAgger-style aggregation of past rollouts (off by default)."""

    iterations: int = 0
    """Rollouts kept (0: off)."""

    ratio: float = 0.5
    """Replayed samples per update, as a fraction of the update's on-policy samples."""

    max_memory_gb: float | None = None
    """Refuse to start if the buffer needs more than this (GiB)."""


@configclass
class RslRlMixingDistillationAlgorithmCfg(RslRlDistillationAlgorithmCfg):
    """Isaac Lab config of dagmix's MixingDistillation: rsl_rl's distillation fields plus the two-stage keys and mixing.

    Invalid values raise ``ValueError`` at construction, naming the value and the valid options. Hydra overrides
    (``agent.algorithm.mixing.schedule=linear``) are applied after construction and validated when the algorithm
    is built, before training starts.
    """

    class_name: str = MIXING_DISTILLATION_CLASS_NAME
    """The algorithm class: dagmix's MixingDistillation. rsl_rl's ``"Distillation"`` would silently ignore every
    field below, so it is rejected."""

    use_two_stage_training: bool = False
    """The two-stage patch's switch. True: the teacher's actions drive the envs for ``phase1_iterations``
    iterations, then the student's (schedule ``two_stage``). False (default): ``mixing`` decides; without a mixing
    schedule the student always drives, as in stock rsl_rl."""

    phase1_iterations: int = 500
    """Teacher-driven iterations of two-stage training (the runner's 0-based iteration ``phase1_iterations`` is the
    first student-driven one). Read only when ``use_two_stage_training`` is True."""

    mixing: MixingCfg = MixingCfg()
    """The beta-mixing schedule; see :class:`MixingCfg`. Leave ``mixing.schedule`` None with two-stage training."""

    phase_console_output: bool = True
    """Print the phase lines every iteration and the switch banner once (rank 0 only)."""

    teacher_action_clip: float | None = None
    """If set, the teacher action the student learns is clamped to [-clip, clip] (e.g. the env's action bounds);
    the executed action is unchanged. None (default) keeps the raw teacher action, as rsl_rl does."""

    loss_weighting: LossWeightingCfg = LossWeightingCfg()
    """Who-drove-aware behaviour-loss weights; all 1 (default) is rsl_rl's plain mean."""

    replay: ReplayCfg = ReplayCfg()
    """Bounded aggregation of past rollouts; ``iterations=0`` (default) is off."""

    learning_rate_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """``constant`` (default: rsl_rl's fixed learning rate), ``linear`` or ``cosine`` decay from ``learning_rate`` to
    ``min_learning_rate`` by ``learning_rate_iterations`` (default: the end of the run)."""

    min_learning_rate: float = 0.0
    """The learning rate a ``linear`` / ``cosine`` schedule decays to (<= learning_rate)."""

    warmup_iterations: int = 0
    """Iterations of linear learning-rate warmup (0: none), for every schedule."""

    learning_rate_iterations: int | None = None
    """Runner iteration at which the decay reaches ``min_learning_rate``; None: the end of the ``learn()`` call
    (its start plus ``max_iterations``)."""

    ema_decay: float | None = None
    """Exponential moving average of the student's weights and normalizer, decay in (0, 1) per optimizer step; the
    averaged student is saved as ``student_state_dict``, evaluated and exported. None (default): off."""

    def __post_init__(self) -> None:
        """Validate every dagmix field at construction."""
        self.validate_config()

    def validate_config(self) -> None:
        """Raise ValueError if a dagmix field is invalid; Isaac Lab's ``cfg.validate()`` calls this hook too."""
        if not isinstance(self.class_name, str) or not _is_mixing_distillation(self.class_name):
            raise ValueError(
                f"class_name={self.class_name!r}: RslRlMixingDistillationAlgorithmCfg needs dagmix's algorithm, "
                f"class_name={MIXING_DISTILLATION_CLASS_NAME!r} (or a subclass). rsl_rl's 'Distillation' would "
                "silently ignore use_two_stage_training, phase1_iterations and mixing."
            )
        if not isinstance(self.use_two_stage_training, bool):
            raise ValueError(f"use_two_stage_training={self.use_two_stage_training!r} must be True or False.")
        if isinstance(self.phase1_iterations, bool) or not isinstance(self.phase1_iterations, int):
            raise ValueError(f"phase1_iterations={self.phase1_iterations!r} must be an int >= 0 (e.g. 500).")
        if self.phase1_iterations < 0:
            raise ValueError(f"phase1_iterations={self.phase1_iterations!r} must be >= 0 (e.g. 500).")
        if not isinstance(self.phase_console_output, bool):
            raise ValueError(f"phase_console_output={self.phase_console_output!r} must be True or False.")
        clip = self.teacher_action_clip
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
            raise ValueError(f"teacher_action_clip={clip!r} must be a positive number or None.")
        self.to_mixing_config()
        LossWeighting.from_dict(class_to_dict(self.loss_weighting))
        ReplayConfig.from_dict(class_to_dict(self.replay))
        LearningRateScheduleConfig(
            self.learning_rate_schedule, self.min_learning_rate, self.warmup_iterations, self.learning_rate_iterations
        ).check_base(self.learning_rate)
        WeightAveragingConfig(self.ema_decay)

    def to_mixing_config(self) -> MixingConfig:
        """Return the validated MixingConfig that MixingDistillation builds from this config's dict form."""
        from dagmix.algorithms.mixing_distillation import _resolve_mixing  # the algorithm's own conversion

        return _resolve_mixing(class_to_dict(self.mixing), self.use_two_stage_training, self.phase1_iterations)


def _is_mixing_distillation(class_name: str) -> bool:
    """Return True if ``class_name`` ("pkg.mod:Cls") names MixingDistillation or a subclass of it."""
    if class_name == MIXING_DISTILLATION_CLASS_NAME:
        return True
    if ":" not in class_name:  # a bare rsl_rl name such as "Distillation"
        return False
    from dagmix.algorithms import MixingDistillation

    module, _, attr = class_name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"class_name={class_name!r} cannot be imported: {err}") from err
    return isinstance(cls, type) and issubclass(cls, MixingDistillation)
