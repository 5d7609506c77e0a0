"""The schedule variants of the comparison benchmarks: built-in names, ``schedule[:key=value,...]`` parsing, overrides.

A variant resolves to a ``mixing`` dict (plus optional algorithm keys and train-config overrides) that
:mod:`dagmix.benchmarks.compare_schedules` turns into a train config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

VARIANTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "student_only": lambda n: {"schedule": "student_only"},
    "teacher_only": lambda n: {"schedule": "teacher_only"},
    "two_stage_third": lambda n: {"schedule": "two_stage", "phase1_iterations": round(n / 3)},
    "two_stage_half": lambda n: {"schedule": "two_stage", "phase1_iterations": round(n / 2)},
    "dagger_first": lambda n: {"schedule": "dagger_first"},
    "dagger_linear": lambda n: {"schedule": "dagger_linear", "iterations": round(n / 2)},
    "dagger_linear_episode": lambda n: {
        "schedule": "dagger_linear",
        "iterations": round(n / 2),
        "granularity": "episode",
    },
    "dagger_exp_0.9": lambda n: {"schedule": "dagger_exp", "decay": 0.9},
    "dagger_exp_0.97": lambda n: {"schedule": "dagger_exp", "decay": 0.97},
    "cosine": lambda n: {"schedule": "cosine", "start": 1.0, "end": 0.0, "iterations": round(n / 2)},
}
"""Built-in variants. Switch points scale with the run: two_stage at 1/3 and 1/2 of it (the two-stage patch's range),
linear and cosine reach beta 0 at 1/2; dagger_exp_0.9 reaches its 0.01 cutoff at iteration 44, 0.97 at 152."""

DEFAULT_VARIANTS = list(VARIANTS)
"""What ``--schedules`` compares by default: the fixed schedules."""

ALGORITHM_KEYS = ("loss_weighting", "replay")
"""Keys of a variant dict that go to the algorithm config rather than to ``mixing``."""

OVERRIDES_KEY = "overrides"
"""Key of a variant dict holding train-config overrides by dotted key, e.g. ``{"algorithm.learning_rate": 1e-3}``
(in a ``--schedules`` string: ``two_stage:phase1_iterations=60,algorithm.learning_rate=1e-3``)."""

VARIANTS.update(
    {
        # closed-loop schedules (each with a hard deadline at 1/2 of the run, like the fixed ones' latest handover)
        "loss_triggered": lambda n: {
            "schedule": "loss_triggered",
            "threshold": 0.02,
            "patience": 5,
            "deadline": round(n / 2),
        },
        "discrepancy_gated": lambda n: {
            "schedule": "discrepancy_gated",
            "probe_fraction": 0.1,
            "deadline": round(n / 2),
        },
        "return_ratio": lambda n: {
            "schedule": "return_ratio",
            "granularity": "episode",
            "probe_fraction": 0.1,
            "deadline": round(n / 2),
        },
        # who-drove-aware training
        "dagger_linear_student_x2": lambda n: {
            **VARIANTS["dagger_linear"](n),
            "loss_weighting": {"student_driven": 2.0},
        },
        "student_only_failed_0.25": lambda n: {"schedule": "student_only", "loss_weighting": {"failed_episode": 0.25}},
    }
)
"""Further variants (adaptive schedules, who-drove weighting), named with ``--schedules`` (not in the default set)."""

BASELINE = "student_only"
"""What stock rsl_rl Distillation does; every variant is tested against it."""


def resolve_variant(name: str, iterations: int, base_cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the ``mixing`` dict of a built-in variant, or of ``schedule[:key=value,...]`` for any dagmix schedule.

    Examples: ``two_stage_third``, ``linear:iterations=100``, ``dagger_exp:decay=0.95,granularity=episode``.
    Dotted train-config overrides are checked against ``base_cfg`` (default: the quadcopter's train config).
    Raises ValueError (naming the valid choices) for anything dagmix cannot build.
    """
    from dagmix.mixing import MixingConfig
    from dagmix.mixing.config import schedule_names
    from dagmix.mixing.overrides import parse_value

    if name in VARIANTS:
        mixing = VARIANTS[name](iterations)
    else:
        kind, _, params = name.partition(":")
        if kind not in schedule_names():
            raise ValueError(
                f"Unknown schedule variant {name!r}: use a built-in variant ({', '.join(VARIANTS)}) or "
                f"'<schedule>[:key=value,...]' with a schedule dagmix knows ({', '.join(schedule_names())})."
            )
        mixing = {"schedule": kind}
        for item in filter(None, re.split(r",(?![^\[\]]*\])", params)):  # commas inside [...] belong to a list
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"Variant {name!r}: {item!r} is not key=value.")
            if "." in key:  # a train-config override, e.g. algorithm.learning_rate=1e-3
                mixing.setdefault(OVERRIDES_KEY, {})[key] = parse_value(value)
            else:
                mixing[key] = parse_value(value)
    MixingConfig.from_dict(mixing_only(mixing))  # validate it now
    base = copy.deepcopy(base_cfg) if base_cfg is not None else quadcopter_train_cfg()
    apply_config_overrides(base, mixing.get(OVERRIDES_KEY, {}), name)
    from dagmix.mixing.options import LossWeighting, ReplayConfig

    LossWeighting.from_dict(mixing.get("loss_weighting"))
    ReplayConfig.from_dict(mixing.get("replay"))
    return mixing


def mixing_only(variant: dict[str, Any]) -> dict[str, Any]:
    """Return the variant's mixing section alone (without its algorithm keys and train-config overrides)."""
    return {k: v for k, v in variant.items() if k not in (*ALGORITHM_KEYS, OVERRIDES_KEY)}


def quadcopter_train_cfg() -> dict[str, Any]:
    """Return the quadcopter's distillation train config (the default base of variant overrides)."""
    from dagmix.envs.task_configs import distill_train_cfg

    return distill_train_cfg("quadcopter")


def apply_config_overrides(cfg: dict[str, Any], overrides: dict[str, Any], variant: str) -> None:
    """Set dotted train-config keys in ``cfg`` (each must exist, as for the CLI's key=value); errors name it."""
    from dagmix.mixing.overrides import apply_overrides

    items = [f"{key}={value if isinstance(value, str) else repr(value)}" for key, value in overrides.items()]
    try:
        apply_overrides(cfg, {}, items)
    except ValueError as e:
        raise ValueError(f"Variant {variant!r}: {e}") from e


def variant_dir_name(name: str) -> str:
    """Return a file-system-safe folder name for a variant."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name.replace(":", "__").replace(",", "_"))
