"""mjlab: register dagmix variants of an mjlab PPO task, trained by mjlab's own ``train`` script.

mjlab (1.6, rsl-rl-lib 5.4.2) picks the runner from the task registration, so a distillation variant is registered
with :class:`MjlabMixingDistillationRunner` and a teacher-guided RL variant (MixingDAggerPPO, e.g. the hand-off from
a distilled student) with :class:`MjlabMixingDAggerPPORunner`; their configs are dataclasses that mjlab's command
line edits like any other (``--agent.algorithm.mixing.schedule linear``)::

    from dagmix.integrations.mjlab_tasks import register_dagger_ppo_task, register_distillation_task
    register_distillation_task("Mjlab-Cartpole-Balance-Distill", "Mjlab-Cartpole-Balance",
                               student_terms=("cart_pos", "pole_angle"))  # the student sees no velocities
    register_dagger_ppo_task("Mjlab-Cartpole-Balance-DAggerPPO", "Mjlab-Cartpole-Balance",
                             student_terms=("cart_pos", "pole_angle"))  # the same student, trained by RL
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mjlab.rl import (
    MjlabOnPolicyRunner,
    RslRlBaseRunnerCfg,
    RslRlModelCfg,
    RslRlOnPolicyRunnerCfg,
    RslRlPpoAlgorithmCfg,
)
from mjlab.tasks import registry

from dagmix.algorithms import MixingDistillationRunner
from dagmix.mixing.config import PRESETS, SCHEDULE_KINDS, schedule_names
from dagmix.mixing.dagger_ppo_schema import DAggerPPOSchema
from dagmix.mixing.estimator_schema import ESTIMATOR_CLASS_NAME, FILTER_CLASS_NAME, EstimatorSchema, FilterSchema
from dagmix.mixing.multi_teacher_schema import MultiTeacherSchema
from dagmix.mixing.names import not_one_of
from dagmix.mixing.schema import AlgorithmSchema, MixingSchema, ScheduleName


@dataclass
class MixingCfg(MixingSchema):
    """The ``mixing`` section: every field of :class:`~dagmix.mixing.schema.MixingSchema`.

    mjlab's default here is two-stage training with 100 teacher-driven iterations. Only the chosen schedule's
    parameters are passed on; a parameter of another schedule is an error unless it is left at its default (so
    ``--agent.algorithm.mixing.schedule linear`` needs no ``phase1-iterations None``).
    """

    schedule: ScheduleName | None = "two_stage"
    """A schedule kind or preset (see the schema); mjlab's default: ``two_stage``."""
    phase1_iterations: int | None = 100
    """step / two_stage: teacher-driven iterations before the student takes over (mjlab's default: 100)."""


@dataclass
class DagmixDistillationAlgorithmCfg(AlgorithmSchema):
    """MixingDistillation's config: every dagmix key of the schema plus rsl_rl's Distillation keys."""

    mixing: MixingCfg = field(default_factory=MixingCfg)
    """Who drives the envs, per iteration."""
    num_learning_epochs: int = 1
    """Passes over each rollout."""
    gradient_length: int = 24
    """Steps per gradient step (a divisor of num_steps_per_env * num_learning_epochs)."""
    learning_rate: float = 1e-3
    """Adam learning rate of the student."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping; None disables it."""
    loss_type: Literal["mse", "huber"] = "mse"
    """Behaviour-cloning loss."""
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    """Optimizer of the student."""
    class_name: str = "dagmix.algorithms:MixingDistillation"
    """Algorithm class, resolved by rsl_rl."""


@dataclass
class DagmixDAggerPPOAlgorithmCfg(RslRlPpoAlgorithmCfg, DAggerPPOSchema):
    """MixingDAggerPPO's config: every key of the DAggerPPO schema plus mjlab's PPO algorithm keys.

    Use it as the ``algorithm`` of :class:`DagmixDAggerPPORunnerCfg` (mjlab's PPO runner config with a ``teacher``
    section). ``mixing`` is the schema's (no schedule: the student always drives).
    """

    imitation_coef: float = 1.0
    """Weight of the imitation loss (see the schema). mjlab's command line (tyro) cannot parse the schema's
    ``float | dict`` type, so the command line sets a number; a schedule dict is set in Python."""
    ppo_coef: float = 1.0
    """Weight of the actor's PPO terms; 0 is pure DAgger. A number on the command line, a schedule dict in Python."""
    class_name: str = "dagmix.algorithms:MixingDAggerPPO"
    """Algorithm class, resolved by rsl_rl."""


@dataclass
class DagmixDAggerPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    """mjlab's PPO runner config plus the ``teacher`` model MixingDAggerPPO builds.

    ``obs_groups`` needs the sets ``actor`` (the student), ``critic`` and ``teacher``.
    """

    teacher: RslRlModelCfg = field(default_factory=RslRlModelCfg)
    """The teacher model: the PPO task's actor config, so that its checkpoint loads (``runner.load(path)``)."""
    algorithm: DagmixDAggerPPOAlgorithmCfg = field(default_factory=DagmixDAggerPPOAlgorithmCfg)
    """The algorithm."""
    teacher_checkpoint: str | None = None
    """PPO checkpoint of the base task (``model_*.pt``), loaded as the teacher (and, where it fits, its critic) when
    :class:`MjlabMixingDAggerPPORunner` is built. Not needed to resume (``--agent.resume True``)."""


@dataclass
class DagmixDistillationRunnerCfg(RslRlBaseRunnerCfg):
    """mjlab runner config of a distillation task (``obs_groups`` has the sets ``student`` and ``teacher``)."""

    student: RslRlModelCfg = field(default_factory=RslRlModelCfg)
    """The student model (needs a ``distribution_cfg``: rsl_rl executes its sampled action)."""
    teacher: RslRlModelCfg = field(default_factory=RslRlModelCfg)
    """The teacher model: the PPO task's actor config, so that its checkpoint loads."""
    algorithm: DagmixDistillationAlgorithmCfg = field(default_factory=DagmixDistillationAlgorithmCfg)
    """The algorithm."""
    teacher_checkpoint: str | None = None
    """PPO checkpoint of the base task (``model_*.pt``), loaded as the teacher when the runner is built. Not needed
    to resume a distillation run (``--agent.resume True``), which restores the teacher with the student."""


@dataclass
class DagmixMultiTeacherCfg(MultiTeacherSchema):
    """The ``teacher`` section of a multi-teacher run, the experts as mjlab model configs.

    Every field comes from :class:`~dagmix.mixing.multi_teacher_schema.MultiTeacherSchema`.

    Set it in Python (``rl_cfg.teacher = DagmixMultiTeacherCfg(...)``); the runner drops the experts' unset keys as
    it does for a single teacher.
    """

    teachers: list[RslRlModelCfg] = field(default_factory=list)
    """One model config per expert (e.g. each expert task's ``actor``), in selector order."""


@dataclass
class DagmixEstimatorModelCfg(RslRlModelCfg, EstimatorSchema):
    """A student (or MixingDAggerPPO actor) that also estimates the teacher's observation (docs/estimator.md).

    mjlab's ``RslRlModelCfg`` for ``dagmix.models:EstimatorRNNModel`` (a GRU by default) with the estimator's fields
    from :class:`~dagmix.mixing.estimator_schema.EstimatorSchema` (validated when the model is built).
    """

    rnn_type: str | None = "gru"
    """RNN type: the estimator's model is recurrent (``input`` mode needs a GRU)."""
    class_name: str = ESTIMATOR_CLASS_NAME
    """The model class: dagmix's EstimatorRNNModel."""


@dataclass
class DagmixFilterModelCfg(RslRlModelCfg, FilterSchema):
    """A student (or MixingDAggerPPO actor) whose GRU also reads its observation's rates of change (docs/estimator.md).

    mjlab's ``RslRlModelCfg`` for ``dagmix.models:FilterRNNModel`` (a GRU) with the filters' field from
    :class:`~dagmix.mixing.estimator_schema.FilterSchema` (validated when the model is built).
    """

    rnn_type: str | None = "gru"
    """RNN type: FilterRNNModel's filters feed a GRU."""
    class_name: str = FILTER_CLASS_NAME
    """The model class: dagmix's FilterRNNModel."""


def teacher_dict(cfg: dict) -> dict:
    """Return the ``teacher`` section's dict (``asdict`` of a model config or of :class:`DagmixMultiTeacherCfg`)."""
    if "teachers" in cfg:  # a multi-teacher: its experts are model configs
        return {**cfg, "teachers": [drop_unset_model_keys(dict(t)) for t in cfg["teachers"]]}
    return drop_unset_model_keys(cfg)


def mixing_dict(cfg: dict) -> dict:
    """Return the flat ``mixing`` dict of an ``asdict(MixingCfg)``: the chosen schedule's parameters only.

    A parameter the schedule does not take is an error unless it is at its :class:`MixingCfg` default.
    """
    name = cfg["schedule"]
    builder = SCHEDULE_KINDS.get(name) or PRESETS.get(name)
    if builder is None:
        raise ValueError(not_one_of("mixing.schedule", name, schedule_names()))
    takes = set(inspect.signature(builder).parameters) | {"granularity", "assignment", "seed"}
    defaults = {f.name: f.default for f in dataclasses.fields(MixingCfg)}
    stray = [k for k, v in cfg.items() if k not in takes and k != "schedule" and v != defaults[k]]
    if stray:
        raise ValueError(f"mixing.schedule={name!r} does not take {stray}; its parameters: {sorted(takes)}.")
    return {"schedule": name, **{k: v for k, v in cfg.items() if k in takes and v is not None}}


def drop_unset_model_keys(model: dict) -> dict:
    """Drop the optional model keys mjlab leaves None (as MjlabOnPolicyRunner does for actor/critic)."""
    model = {k: v for k, v in model.items() if not (k in ("cnn_cfg", "distribution_cfg") and v is None)}
    if model.get("rnn_type") is None:
        model = {k: v for k, v in model.items() if k not in ("rnn_type", "rnn_hidden_dim", "rnn_num_layers")}
    return model


class MjlabMixingDistillationRunner(MixingDistillationRunner, MjlabOnPolicyRunner):
    """MixingDistillationRunner with mjlab's checkpoint handling (env step counter, legacy keys, upload flag)."""

    def __init__(self, env: Any, train_cfg: dict, log_dir: str | None = None, device: str = "cpu") -> None:
        """Convert the dataclass dict (``asdict`` of :class:`DagmixDistillationRunnerCfg`), build, load the teacher."""
        cfg = copy.deepcopy(train_cfg)
        teacher_checkpoint = cfg.pop("teacher_checkpoint", None)
        cfg["student"], cfg["teacher"] = drop_unset_model_keys(cfg["student"]), teacher_dict(cfg["teacher"])
        algorithm = cfg["algorithm"]
        algorithm["mixing"] = mixing_dict(algorithm["mixing"])
        cfg["obs_groups"] = {k: list(v) for k, v in cfg["obs_groups"].items()}
        super().__init__(env, cfg, log_dir, device)
        if teacher_checkpoint:
            self.load(teacher_checkpoint)


class MjlabMixingDAggerPPORunner(MjlabOnPolicyRunner):
    """mjlab's PPO runner for MixingDAggerPPO: builds the ``teacher`` model section and loads ``teacher_checkpoint``."""

    def __init__(self, env: Any, train_cfg: dict, log_dir: str | None = None, device: str = "cpu") -> None:
        """Convert the dataclass dict (``asdict`` of :class:`DagmixDAggerPPORunnerCfg`), build, load the teacher."""
        cfg = copy.deepcopy(train_cfg)
        teacher_checkpoint = cfg.pop("teacher_checkpoint", None)
        cfg["teacher"] = drop_unset_model_keys(cfg["teacher"])
        cfg["obs_groups"] = {k: list(v) for k, v in cfg["obs_groups"].items()}
        super().__init__(env, cfg, log_dir, device)
        if teacher_checkpoint:
            self.load(teacher_checkpoint)  # a PPO checkpoint: the teacher (and its critic where it fits) only


def _student_variant(
    base_task_id: str, student_terms: Sequence[str] | None, student: RslRlModelCfg | None, student_group: str
) -> tuple[Any, Any, Any, RslRlModelCfg, tuple[str, ...]]:
    """Return the base task's runner config, its env configs with the student's group, the student and its groups."""
    import mjlab.tasks  # noqa: F401  (registers mjlab's own tasks)

    if base_task_id not in registry.list_tasks():
        raise ValueError(f"Unknown mjlab task {base_task_id!r}; registered: {', '.join(registry.list_tasks())}.")
    base = registry.load_rl_cfg(base_task_id)
    env_cfg = registry.load_env_cfg(base_task_id)
    play_env_cfg = registry.load_env_cfg(base_task_id, play=True)
    teacher_groups = tuple(base.obs_groups["actor"])
    student_groups = teacher_groups
    if student_terms is not None:
        actor = env_cfg.observations[teacher_groups[0]]
        unknown = [t for t in student_terms if t not in actor.terms]
        if unknown:
            raise ValueError(f"Unknown observation term(s) {unknown}; the actor group has: {', '.join(actor.terms)}.")
        for cfg in (env_cfg, play_env_cfg):
            group = cfg.observations[teacher_groups[0]]
            cfg.observations[student_group] = dataclasses.replace(
                group, terms={t: copy.deepcopy(group.terms[t]) for t in student_terms}
            )
        student_groups = (student_group,)
    if student is None:
        student = dataclasses.replace(
            copy.deepcopy(base.actor),
            obs_normalization=True,
            distribution_cfg={"class_name": "GaussianDistribution", "init_std": 0.1, "std_type": "scalar"},
        )
    return base, env_cfg, play_env_cfg, student, student_groups


def register_distillation_task(
    task_id: str,
    base_task_id: str,
    student_terms: Sequence[str] | None = None,
    student: RslRlModelCfg | None = None,
    algorithm: DagmixDistillationAlgorithmCfg | None = None,
    student_group: str = "student",
) -> DagmixDistillationRunnerCfg:
    """Register ``task_id``: the env of the PPO task ``base_task_id``, distilled with MixingDistillation.

    The teacher is the base task's actor (its config and observation groups, so a PPO checkpoint of the base
    task loads into it). The student reads ``student_terms`` of the actor group (a new observation group
    ``student_group``, e.g. without privileged terms), or the actor's groups when None.

    Args:
        task_id: The new task's id (``python -m mjlab.scripts.train TASK_ID ...``).
        base_task_id: A registered mjlab PPO task, e.g. ``"Mjlab-Cartpole-Balance"`` (import ``mjlab.tasks`` first).
        student_terms: Names of the actor group's observation terms the student sees; None: all of them.
        student: The student model; None: the actor's architecture with observation normalization and a
            Gaussian of std 0.1.
        algorithm: The algorithm config; None: :class:`DagmixDistillationAlgorithmCfg` defaults (two-stage, 100
            teacher iterations; ``gradient_length`` = the base task's ``num_steps_per_env``).
        student_group: Name of the student's observation group when ``student_terms`` is given.

    Returns:
        The registered runner config (mjlab's ``train`` deep-copies it; edit it through the command line).

    Raises:
        ValueError: unknown base task or observation terms (naming the valid ones).
    """
    base, env_cfg, play_env_cfg, student, student_groups = _student_variant(
        base_task_id, student_terms, student, student_group
    )
    teacher_groups = tuple(base.obs_groups["actor"])
    if algorithm is None:
        algorithm = DagmixDistillationAlgorithmCfg(gradient_length=base.num_steps_per_env)
    rl_cfg = DagmixDistillationRunnerCfg(
        **_base_runner_fields(base),
        student=student,
        teacher=copy.deepcopy(base.actor),
        algorithm=algorithm,
    )
    rl_cfg.obs_groups = {"student": student_groups, "teacher": teacher_groups}
    rl_cfg.experiment_name = f"{base.experiment_name}_distillation"
    registry.register_mjlab_task(task_id, env_cfg, play_env_cfg, rl_cfg, runner_cls=MjlabMixingDistillationRunner)
    return rl_cfg


def _base_runner_fields(base: RslRlBaseRunnerCfg) -> dict[str, Any]:
    """Return copies of the base task's runner fields (iterations, steps per env, logging, ...) for a variant."""
    return {f.name: copy.deepcopy(getattr(base, f.name)) for f in dataclasses.fields(RslRlBaseRunnerCfg)}


def register_dagger_ppo_task(
    task_id: str,
    base_task_id: str,
    student_terms: Sequence[str] | None = None,
    student: RslRlModelCfg | None = None,
    algorithm: DagmixDAggerPPOAlgorithmCfg | None = None,
    student_group: str = "student",
) -> DagmixDAggerPPORunnerCfg:
    """Register ``task_id``: the env of the PPO task ``base_task_id``, its student trained with MixingDAggerPPO.

    The arguments are those of :func:`register_distillation_task`, so that the same ``student_terms`` and
    ``student`` give an actor into which that variant's distilled checkpoint loads (``init_student``). The teacher is
    the base task's actor, the critic the base task's critic on its own groups (so the teacher's PPO critic
    initialises it, ``init_critic_from_teacher``).

    Args:
        task_id: The new task's id (``python -m mjlab.scripts.train TASK_ID ...``).
        base_task_id: A registered mjlab PPO task, e.g. ``"Mjlab-Cartpole-Balance"``.
        student_terms: Names of the actor group's observation terms the student sees; None: all of them.
        student: The student model (the actor); None: as in :func:`register_distillation_task`.
        algorithm: The algorithm config; None: the base task's PPO keys at a fixed learning rate (as the recipe was
            measured) and every dagmix key at its schema default (the recipe).
        student_group: Name of the student's observation group when ``student_terms`` is given.

    Returns:
        The registered runner config (mjlab's ``train`` deep-copies it; edit it through the command line).

    Raises:
        ValueError: unknown base task or observation terms (naming the valid ones).
    """
    base, env_cfg, play_env_cfg, student, student_groups = _student_variant(
        base_task_id, student_terms, student, student_group
    )
    if algorithm is None:
        ppo = {f.name: getattr(base.algorithm, f.name) for f in dataclasses.fields(RslRlPpoAlgorithmCfg)}
        del ppo["class_name"]
        algorithm = DagmixDAggerPPOAlgorithmCfg(**copy.deepcopy({**ppo, "schedule": "fixed"}))
    rl_cfg = DagmixDAggerPPORunnerCfg(
        **_base_runner_fields(base),
        actor=student,
        critic=copy.deepcopy(base.critic),
        teacher=copy.deepcopy(base.actor),
        algorithm=algorithm,
    )
    rl_cfg.obs_groups = {
        "actor": student_groups,
        "critic": tuple(base.obs_groups["critic"]),
        "teacher": tuple(base.obs_groups["actor"]),
    }
    rl_cfg.experiment_name = f"{base.experiment_name}_dagger_ppo"
    registry.register_mjlab_task(task_id, env_cfg, play_env_cfg, rl_cfg, runner_cls=MjlabMixingDAggerPPORunner)
    return rl_cfg
