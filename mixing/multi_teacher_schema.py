"""The ``teacher`` section of a multi-teacher run, declared once (no rsl_rl import).

:class:`MultiTeacherSchema` is the config of :class:`dagmix.models.MultiTeacherModel`; the model validates its
arguments with :func:`validate_multi_teacher`, and the Isaac Lab configclass and the mjlab dataclass of the
section inherit its fields (same name, type, default and docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MULTI_TEACHER_CLASS_NAME = "dagmix.models:MultiTeacherModel"
"""The rsl_rl ``class_name`` of the multi-teacher model (the ``teacher`` section's)."""


@dataclass
class MultiTeacherSchema:
    """The ``teacher`` section of a multi-teacher run: several experts, each env labelled by its own.

    Expert ``k`` reads the observation set ``teacher_<k>`` of ``obs_groups`` if the config has one, else the
    ``teacher`` set (the set rsl_rl builds the teacher from).
    """

    class_name: str = MULTI_TEACHER_CLASS_NAME
    """The model class rsl_rl builds for the ``teacher`` section."""

    teachers: list[Any] = field(default_factory=list)
    """One model config per expert (as rsl_rl's ``teacher`` section: ``class_name`` such as ``MLPModel`` or
    ``RNNModel`` plus its keys), in expert order; expert ``k`` drives and labels the envs whose selector is ``k``."""

    checkpoints: list[str] | None = None
    """PPO checkpoints (``actor_state_dict``) of the experts, same order and length as ``teachers``, loaded when
    the model is built (no ``runner.load`` needed). None: the weights come from ``runner.load`` of a checkpoint
    of this model (a dagmix distillation checkpoint)."""

    selector_group: str = ""
    """The observation group that says each env's expert: shape (num_envs, 1) (or (num_envs,)), an integer value
    in 0..K-1 per env, float or integer dtype. Required."""


MULTI_TEACHER_KEYS: tuple[str, ...] = ("teachers", "checkpoints", "selector_group")
"""The keys of the section besides ``class_name``."""


def validate_multi_teacher(
    teachers: Any, checkpoints: Any, selector_group: Any
) -> tuple[list[dict[str, Any]], list[str] | None, str]:
    """Check the section's values and return them as (teachers, checkpoints, selector_group).

    Raises:
        ValueError: naming the bad key or value and the fix.
    """
    if isinstance(teachers, (str, Mapping)) or not isinstance(teachers, Sequence) or len(teachers) == 0:
        raise ValueError(
            f"teachers={teachers!r} must be a non-empty list of model configs, one per expert, e.g. "
            "[{'class_name': 'MLPModel', 'hidden_dims': [256, 256]}, ...]."
        )
    parsed = []
    for k, cfg in enumerate(teachers):
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("class_name"), str):
            raise ValueError(f"teachers[{k}]={cfg!r} must be a model config with a 'class_name' (e.g. 'MLPModel').")
        parsed.append(dict(cfg))
    paths = None
    if checkpoints is not None:
        if isinstance(checkpoints, str) or not isinstance(checkpoints, Sequence):
            raise ValueError(f"checkpoints={checkpoints!r} must be a list of checkpoint paths, one per expert.")
        if len(checkpoints) != len(parsed):
            raise ValueError(
                f"checkpoints has {len(checkpoints)} entries but teachers has {len(parsed)}: give one PPO checkpoint "
                "per expert, in the same order (or checkpoints=None to load them with runner.load)."
            )
        paths = [str(p) for p in checkpoints]
    if not isinstance(selector_group, str) or not selector_group:
        raise ValueError(
            f"selector_group={selector_group!r} must name the observation group that holds each env's expert "
            "index (shape (num_envs, 1), values 0..K-1), e.g. selector_group='expert_id'."
        )
    return parsed, paths, selector_group


def multi_teacher_checkpoints(train_cfg: Mapping[str, Any]) -> list[str] | None:
    """Return the experts' checkpoints of a train config whose ``teacher`` is a multi-teacher, else None.

    None also when the multi-teacher has ``checkpoints=None`` (its weights then come from ``runner.load``).
    """
    teacher = train_cfg.get("teacher")
    if not isinstance(teacher, Mapping) or teacher.get("class_name") != MULTI_TEACHER_CLASS_NAME:
        return None
    checkpoints = teacher.get("checkpoints")
    return None if checkpoints is None else [str(p) for p in checkpoints]
