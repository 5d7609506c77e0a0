"""Isaac Lab configclasses for dagmix's MixingDistillation and MixingDAggerPPO, derived from the schema.

Use :class:`RslRlMixingDistillationAlgorithmCfg` as the ``algorithm`` of an Isaac Lab
``RslRlDistillationRunnerCfg``; ``isaaclab train`` then runs ``dagmix.algorithms:MixingDistillation`` under rsl_rl's
stock ``DistillationRunner``. Use :class:`RslRlMixingDAggerPPORunnerCfg` (an ``RslRlOnPolicyRunnerCfg`` with a
``teacher`` model section) with :class:`RslRlMixingDAggerPPOAlgorithmCfg` to run ``dagmix.algorithms:MixingDAggerPPO``
under rsl_rl's stock ``OnPolicyRunner`` (see docs/isaaclab.md). Every dagmix field is inherited from the schema
(same name, type, default and docstring), so every option is reachable; Isaac Lab converts the config with its
``to_dict`` and the schema's validation checks it, here at construction and again when the algorithm is built.
"""

from __future__ import annotations

import importlib
from dataclasses import MISSING

from dagmix.mixing.config import MixingConfig
from dagmix.mixing.dagger_ppo_schema import (
    DAGGER_PPO_KEYS,
    DAggerPPOOptions,
    DAggerPPOSchema,
    kl_adaptive,
    resolve_learning_rate_schedule,
    validate_dagger_ppo,
)
from dagmix.mixing.estimator_schema import ESTIMATOR_CLASS_NAME, FILTER_CLASS_NAME, EstimatorSchema, FilterSchema
from dagmix.mixing.multi_teacher_schema import MultiTeacherSchema, validate_multi_teacher
from dagmix.mixing.options import LossWeighting, ReplayConfig
from dagmix.mixing.schema import AlgorithmSchema, MixingSchema, validate

INSTALL_HINT = (
    "dagmix.integrations.isaaclab_cfg needs Isaac Lab 3.0 (the packages isaaclab and isaaclab_rl), which is not "
    "installed in this environment. Install it into a Python 3.12 environment with "
    "`pip install 'dagmix[isaaclab]'` (or `pip install isaaclab==3.0.0`); see docs/isaaclab.md."
)

try:
    from isaaclab.utils import configclass
    from isaaclab.utils.dict import class_to_dict
    from isaaclab_rl.rsl_rl import (
        RslRlDistillationAlgorithmCfg,
        RslRlMLPModelCfg,
        RslRlOnPolicyRunnerCfg,
        RslRlPpoAlgorithmCfg,
        RslRlRNNModelCfg,
    )
except ModuleNotFoundError as err:  # only a missing Isaac Lab is turned into the install hint
    if err.name is None or not err.name.split(".")[0].startswith("isaaclab"):
        raise
    raise ModuleNotFoundError(INSTALL_HINT, name=err.name) from err

MIXING_DISTILLATION_CLASS_NAME = "dagmix.algorithms:MixingDistillation"
"""The rsl_rl ``class_name`` of dagmix's algorithm; rsl_rl resolves it and passes the other fields as kwargs."""
MIXING_DAGGER_PPO_CLASS_NAME = "dagmix.algorithms:MixingDAggerPPO"
"""The rsl_rl ``class_name`` of dagmix's teacher-guided RL algorithm (run by rsl_rl's stock ``OnPolicyRunner``)."""


@configclass
class MixingCfg(MixingSchema):
    """The ``mixing`` section (every field from :class:`~dagmix.mixing.schema.MixingSchema`)."""


@configclass
class LossWeightingCfg(LossWeighting):
    """The ``loss_weighting`` section (every field from :class:`~dagmix.mixing.options.LossWeighting`)."""

    active = LossWeighting.active  # declared here: Isaac Lab's configclass skips only its own class's properties


@configclass
class ReplayCfg(ReplayConfig):
    """The ``replay`` section (every field from :class:`~dagmix.mixing.options.ReplayConfig`)."""

    active = ReplayConfig.active  # declared here: Isaac Lab's configclass skips only its own class's properties


@configclass
class RslRlMixingDistillationAlgorithmCfg(RslRlDistillationAlgorithmCfg, AlgorithmSchema):
    """Isaac Lab config of dagmix's MixingDistillation: rsl_rl's distillation fields plus the schema's.

    Invalid values raise ``ValueError`` at construction, naming the value and the valid options. Hydra overrides
    (``agent.algorithm.mixing.schedule=linear``) are applied after construction and validated when the algorithm
    is built, before training starts.
    """

    class_name: str = MIXING_DISTILLATION_CLASS_NAME
    """The algorithm class: dagmix's MixingDistillation. rsl_rl's ``"Distillation"`` would silently ignore every
    dagmix field, so it is rejected."""

    use_two_stage_training: bool = False
    """The two-stage patch's switch (its default here, False; see the schema)."""

    phase1_iterations: int = 500
    """The two-stage patch's teacher-driven iterations (its default here, 500), read only with
    ``use_two_stage_training=True``."""

    mixing: MixingCfg = MixingCfg()
    """The beta-mixing schedule. Leave ``mixing.schedule`` None with two-stage training."""

    loss_weighting: LossWeightingCfg = LossWeightingCfg()
    """Who-drove-aware behaviour-loss weights; all 1 (default) is rsl_rl's plain mean."""

    replay: ReplayCfg = ReplayCfg()
    """Bounded aggregation of past rollouts; ``iterations=0`` (default) is off."""

    def __post_init__(self) -> None:
        """Validate every dagmix field at construction."""
        self.validate_config()

    def validate_config(self) -> None:
        """Raise ValueError if a dagmix field is invalid; Isaac Lab's ``cfg.validate()`` calls this hook too."""
        if not isinstance(self.class_name, str) or not _is_subclass_of(self.class_name, "MixingDistillation"):
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
        options = validate(self._dagmix_dict())
        if isinstance(self.learning_rate, (int, float)):  # Isaac Lab leaves it MISSING until the task sets it
            options.lr_schedule.check_base(self.learning_rate)

    def _dagmix_dict(self) -> dict:
        """Return the dagmix fields in the dict form MixingDistillation receives."""
        return {k: v for k, v in class_to_dict(self).items() if k in AlgorithmSchema.__dataclass_fields__}

    def to_mixing_config(self) -> MixingConfig:
        """Return the validated MixingConfig that MixingDistillation builds from this config's dict form."""
        return validate(self._dagmix_dict()).mixing


@configclass
class RslRlMixingDAggerPPOAlgorithmCfg(RslRlPpoAlgorithmCfg, DAggerPPOSchema):
    """Isaac Lab config of dagmix's MixingDAggerPPO: Isaac Lab's PPO fields plus the DAggerPPO schema's.

    Every dagmix field (``imitation_coef``, ``ppo_coef``, ``imitation_loss``, ``mixing``, ``init_student``,
    ``teacher_action_clip``, ``phase_console_output``) is inherited from
    :class:`~dagmix.mixing.dagger_ppo_schema.DAggerPPOSchema` with its default: no mixing (the student always
    drives), both coefficients 1. Invalid values raise ``ValueError`` at construction; Hydra overrides
    (``agent.algorithm.imitation_coef=0.5``) are validated when the algorithm is built.
    """

    class_name: str = MIXING_DAGGER_PPO_CLASS_NAME
    """The algorithm class: dagmix's MixingDAggerPPO. rsl_rl's ``"PPO"`` would reject every dagmix field."""

    mixing: MixingCfg = MixingCfg()
    """Who drives the envs (beta), as for MixingDistillation (fixed kinds and presets only)."""

    def __post_init__(self) -> None:
        """Validate every dagmix field at construction."""
        self.validate_config()

    def validate_config(self) -> None:
        """Raise ValueError if a dagmix field is invalid; Isaac Lab's ``cfg.validate()`` calls this hook too."""
        if not isinstance(self.class_name, str) or not _is_subclass_of(self.class_name, "MixingDAggerPPO"):
            raise ValueError(
                f"class_name={self.class_name!r}: RslRlMixingDAggerPPOAlgorithmCfg needs dagmix's algorithm, "
                f"class_name={MIXING_DAGGER_PPO_CLASS_NAME!r} (or a subclass)."
            )
        if self.symmetry_cfg is not None:
            raise ValueError(
                "symmetry_cfg is not supported by MixingDAggerPPO (the imitation labels would need mirroring too); "
                "set symmetry_cfg=None."
            )
        options = self.to_options()
        if isinstance(self.learning_rate, (int, float)) and isinstance(self.schedule, str):  # MISSING until set
            resolve_learning_rate_schedule(options, self.learning_rate, kl_adaptive(self.schedule, self.desired_kl))

    def to_options(self) -> DAggerPPOOptions:
        """Return the validated options MixingDAggerPPO builds from this config's dict form."""
        return validate_dagger_ppo({k: v for k, v in class_to_dict(self).items() if k in DAGGER_PPO_KEYS})


@configclass
class RslRlMixingDAggerPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    """Isaac Lab's ``OnPolicyRunner`` config plus the ``teacher`` model section MixingDAggerPPO builds.

    ``isaaclab train`` converts it with ``to_dict`` into the dict rsl_rl's stock ``OnPolicyRunner`` receives, so
    ``actor`` (the student), ``critic`` and ``teacher`` reach ``MixingDAggerPPO.construct_algorithm``. ``obs_groups``
    needs the sets ``actor``, ``critic`` and ``teacher`` (the teacher's groups are those of the PPO run that trained
    it). The teacher is loaded from that run's checkpoint by ``--checkpoint``, with Isaac Lab's default
    ``--resume_optimizer_state`` (Isaac Lab then passes ``load_cfg=None``: a PPO checkpoint loads the teacher, a
    MixingDAggerPPO checkpoint resumes everything). Not with ``--no-resume_optimizer_state``: Isaac Lab then passes
    its ``OnPolicyRunner`` ``load_cfg`` (``actor``, ``critic``, no ``teacher``), which loads the PPO checkpoint into
    the student; that fails on a layout mismatch, and otherwise training stops with "Teacher model parameters not
    loaded".
    """

    teacher: RslRlMLPModelCfg = MISSING
    """The teacher model: the PPO task's ``actor`` config, so that its checkpoint loads."""

    algorithm: RslRlMixingDAggerPPOAlgorithmCfg = MISSING
    """The algorithm configuration (dagmix's MixingDAggerPPO)."""


_LEGACY_MODEL_KEYS = ("stochastic", "init_noise_std", "noise_std_type", "state_dependent_std")
"""Isaac Lab's pre-rsl-rl-5 model fields; its train script removes them from the top-level model sections only."""


@configclass
class RslRlMultiTeacherModelCfg(MultiTeacherSchema):
    """The ``teacher`` section of a multi-teacher run (every field from the MultiTeacherSchema).

    For ``RslRlDistillationRunnerCfg.teacher`` or :class:`RslRlMixingDAggerPPORunnerCfg`'s ``teacher``; the fields
    come from :class:`~dagmix.mixing.multi_teacher_schema.MultiTeacherSchema`.

    ``teachers`` takes Isaac Lab model configs (e.g. each expert task's ``actor``, ``RslRlMLPModelCfg`` /
    ``RslRlRNNModelCfg``) or dicts; at construction they become rsl_rl's model dicts (Isaac Lab's legacy
    ``stochastic`` fields dropped; give a stochastic expert a ``distribution_cfg``).
    """

    teachers: list = MISSING
    """One model config per expert, in selector order (Isaac Lab model configs or dicts)."""

    selector_group: str = MISSING
    """The observation group with each env's expert index (shape (num_envs, 1), values 0..K-1)."""

    distribution_cfg: None = None
    """Read by Isaac Lab's train script from every model section; stays None (each expert has its own)."""

    stochastic: bool = False
    """Isaac Lab's legacy model field, read and removed by its train script; stays False."""

    def __post_init__(self) -> None:
        """Turn the experts into rsl_rl's dicts and validate the section (unless ``teachers`` is still unset)."""
        if not isinstance(self.teachers, type(MISSING)):
            self.teachers = [_expert_dict(k, t) for k, t in enumerate(self.teachers)]
            self.validate_config()

    def validate_config(self) -> None:
        """Raise ValueError if a field is invalid; Isaac Lab's ``cfg.validate()`` calls this hook too."""
        if self.distribution_cfg is not None or self.stochastic is not False:
            raise ValueError("distribution_cfg / stochastic of the multi-teacher section must stay None / False.")
        validate_multi_teacher(self.teachers, self.checkpoints, self.selector_group)


@configclass
class RslRlEstimatorRNNModelCfg(RslRlRNNModelCfg, EstimatorSchema):
    """A student (or MixingDAggerPPO actor) that also estimates the teacher's observation (docs/estimator.md).

    Isaac Lab's ``RslRlRNNModelCfg`` with ``class_name="dagmix.models:EstimatorRNNModel"`` and the estimator's
    fields from :class:`~dagmix.mixing.estimator_schema.EstimatorSchema` (validated when the model is built).
    """

    class_name: str = ESTIMATOR_CLASS_NAME
    """The model class: dagmix's EstimatorRNNModel."""


@configclass
class RslRlFilterRNNModelCfg(RslRlRNNModelCfg, FilterSchema):
    """A student (or MixingDAggerPPO actor) whose GRU also reads its observation's rates of change (docs/estimator.md).

    Isaac Lab's ``RslRlRNNModelCfg`` with ``class_name="dagmix.models:FilterRNNModel"`` and the filters' field from
    :class:`~dagmix.mixing.estimator_schema.FilterSchema` (validated when the model is built; ``rnn_type`` must stay
    ``gru``).
    """

    class_name: str = FILTER_CLASS_NAME
    """The model class: dagmix's FilterRNNModel."""


def _expert_dict(k: int, cfg: object) -> dict:
    """Return expert ``k``'s model config as rsl_rl's dict (an Isaac Lab model config or a dict)."""
    d = dict(cfg) if isinstance(cfg, dict) else class_to_dict(cfg)
    if d.get("stochastic") is True:
        raise ValueError(
            f"teachers[{k}] uses Isaac Lab's legacy stochastic=True; give it a distribution_cfg instead (e.g. "
            "RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0)) so that its PPO checkpoint loads."
        )
    return {key: v for key, v in d.items() if key not in _LEGACY_MODEL_KEYS}


def _is_subclass_of(class_name: str, algorithm: str) -> bool:
    """Return True if ``class_name`` ("pkg.mod:Cls") names dagmix's ``algorithm`` class or a subclass of it."""
    if class_name == f"dagmix.algorithms:{algorithm}":
        return True
    if ":" not in class_name:  # a bare rsl_rl name such as "Distillation"
        return False
    import dagmix.algorithms

    module, _, attr = class_name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"class_name={class_name!r} cannot be imported: {err}") from err
    return isinstance(cls, type) and issubclass(cls, getattr(dagmix.algorithms, algorithm))
