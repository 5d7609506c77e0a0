"""The mixing state stored in rsl_rl checkpoints under ``checkpoint["dagmix"]``: schedule, mask generator, model."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

MIXING_STATE_FORMAT_VERSION = 1
"""Version of the ``checkpoint["dagmix"]`` layout; bumped on incompatible changes."""

CHECKPOINT_KEY = "dagmix"
"""Key of the mixing state in rsl_rl checkpoints (ignored by stock rsl_rl when loading)."""


def mixing_state_dict(alg: Any) -> dict[str, Any]:
    """Return the mixing state of a MixingDistillation ``alg``."""
    from dagmix import __version__

    return {
        "format_version": MIXING_STATE_FORMAT_VERSION,
        "dagmix_version": __version__,
        "mixing": alg.mixing_cfg.to_dict(),
        "schedule": alg.schedule.describe(),
        "schedule_state": alg.schedule.state_dict(),
        "policy": alg.mixing_policy.state_dict(),
        "forced_phase2_from": alg._forced_phase2_from,
        "model": getattr(alg, "model_cfg", None),  # the model configs, so that a copied file is enough
    }


def load_mixing_state(alg: Any, state: Mapping[str, Any], iteration: int) -> None:
    """Restore :func:`mixing_state_dict` output into ``alg`` for a run resuming at ``iteration``.

    A different schedule or mask configuration is used as configured, with a warning naming what changed.
    """
    version = state.get("format_version")
    if not isinstance(version, int) or version > MIXING_STATE_FORMAT_VERSION:
        raise ValueError(
            f"Checkpoint mixing state has format_version={version!r}; this dagmix reads versions up to "
            f"{MIXING_STATE_FORMAT_VERSION}. Upgrade dagmix to resume this run."
        )
    if state["schedule"] != alg.schedule.describe():
        warnings.warn(
            f"The checkpoint was trained with {state['schedule']}; this run uses {alg.schedule.describe()}. "
            "Continuing with the configured schedule.",
            stacklevel=4,
        )
    else:
        alg.schedule.load_state_dict(state["schedule_state"])
    alg._forced_phase2_from = state.get("forced_phase2_from")
    saved, seed = state["policy"], alg.mixing_policy.seed
    changed: dict[str, tuple[Any, Any]] = {}
    if saved.get("granularity") != alg.mixing_cfg.granularity:
        changed["granularity"] = (saved.get("granularity"), alg.mixing_cfg.granularity)
    if state.get("mixing", {}).get("seed") != alg.mixing_cfg.seed or (
        alg.gpu_world_size == 1 and saved.get("seed") != seed  # a derived seed (from the run's seed) changed
    ):
        changed["seed"] = (saved.get("seed"), seed)
    if changed:
        warnings.warn(
            "The checkpoint's mask was drawn with "
            + ", ".join(f"mixing {k}={old!r}" for k, (old, _) in changed.items())
            + "; this run uses "
            + ", ".join(f"{k}={new!r}" for k, (_, new) in changed.items())
            + ". Continuing with the configured values (the masks differ from an uninterrupted run).",
            stacklevel=4,
        )
    alg.mixing_policy.load_state_dict(saved)
    if "seed" in changed:  # the configured seed, re-seeded deterministically from (seed, iteration)
        alg.mixing_policy.seed = seed
        alg.mixing_policy.reseed(iteration)


def resume(alg: Any, state: Mapping[str, Any] | None, iteration: int) -> None:
    """Resume the schedule and the mask generator of ``alg`` at ``iteration`` from a checkpoint's mixing state.

    Without one (a checkpoint of stock rsl_rl), the generator is re-seeded from (seed, iteration), with a warning.
    """
    if state is None:
        warnings.warn(
            f"The checkpoint has no dagmix mixing state (saved by stock rsl_rl?); re-seeding the mask "
            f"generator from (seed={alg.mixing_policy.seed}, iteration={iteration}).",
            stacklevel=3,
        )
        alg.mixing_policy.reseed(iteration)
    else:
        alg.load_mixing_state(state, iteration)
