"""Checkpoint helpers of MixingDAggerPPO: ``init_student`` and the state under ``checkpoint["dagmix"]``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from dagmix.algorithms.mixing_distillation import CHECKPOINT_KEY

if TYPE_CHECKING:
    from dagmix.algorithms.dagger_ppo import MixingDAggerPPO

DAGGER_PPO_STATE_FORMAT_VERSION = 1
"""Version of MixingDAggerPPO's ``checkpoint["dagmix"]`` layout."""


def load_student(alg: MixingDAggerPPO, path: str) -> None:
    """Initialise the actor from the ``student_state_dict`` of the distillation checkpoint at ``path``."""
    try:
        loaded = torch.load(path, map_location=alg.device, weights_only=True)
    except FileNotFoundError as e:
        raise ValueError(f"init_student={path!r}: no such file (a distillation checkpoint).") from e
    if not isinstance(loaded, Mapping) or "student_state_dict" not in loaded:
        keys = sorted(loaded) if isinstance(loaded, Mapping) else type(loaded).__name__
        raise ValueError(
            f"init_student={path!r} is not a distillation checkpoint: it has no 'student_state_dict' (keys: "
            f"{keys}). Pass a checkpoint written by MixingDistillation or rsl_rl's Distillation."
        )
    alg._raw_actor.load_state_dict(loaded["student_state_dict"])


def load_dagmix_state(alg: MixingDAggerPPO, state: Mapping[str, Any]) -> None:
    """Restore the mask generator and mask saved under ``checkpoint["dagmix"]``; warn about other schedules."""
    version = state.get("format_version")
    if state.get("algorithm") != "MixingDAggerPPO" or not isinstance(version, int):
        raise ValueError(
            f"checkpoint['{CHECKPOINT_KEY}'] was not written by MixingDAggerPPO (algorithm="
            f"{state.get('algorithm')!r}); resume it with the algorithm that wrote it."
        )
    if version > DAGGER_PPO_STATE_FORMAT_VERSION:
        raise ValueError(
            f"Checkpoint state has format_version={version}; this dagmix reads up to "
            f"{DAGGER_PPO_STATE_FORMAT_VERSION}. Upgrade dagmix to resume this run."
        )
    for key, now in (
        ("schedule", alg.beta_schedule.describe()),
        ("imitation_coef", alg.imitation_coef.describe()),
        ("ppo_coef", alg.ppo_coef.describe()),
    ):
        if state.get(key) != now:
            warnings.warn(
                f"The checkpoint was trained with {key} {state.get(key)}; this run uses {now}. Continuing with "
                "the configured one.",
                stacklevel=3,
            )
    alg.mixing_policy.load_state_dict(state["policy"])
