"""The one place that knows about differences between supported rsl-rl-lib versions."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

SUPPORTED = ">=5.4.2,<5.6"
"""The rsl-rl-lib range dagmix is tested against (5.4.2: mjlab 1.6; 5.5.1: Isaac Lab 3.0)."""


def _parse(v: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in v.split(".")[:3])


try:
    RSL_RL_VERSION = version("rsl-rl-lib")
except PackageNotFoundError:  # pragma: no cover - rsl_rl installed from source without metadata
    RSL_RL_VERSION = "0.0.0"

_V = _parse(RSL_RL_VERSION)


def check_rsl_rl_version() -> None:
    """Raise ImportError with the fix when the installed rsl-rl-lib is outside the supported range."""
    if _V == (0, 0, 0):
        return
    if not ((5, 4, 2) <= _V < (5, 6, 0)):
        raise ImportError(
            f"dagmix.algorithms supports rsl-rl-lib {SUPPORTED}, but {RSL_RL_VERSION} is installed. "
            "rsl-rl 2.x (the two-stage patch's version), 3.x and 4.x are not supported by this module; "
            "install a supported version, e.g. `pip install 'rsl-rl-lib==5.5.1'`."
        )


NORMALIZER_UPDATED_IN_UPDATE = _V >= (5, 5, 0)
"""5.5: the student normalizer is updated once per update() from the rollout; 5.4: on every process_env_step."""

CONSTRUCT_MUTATES_CONFIG = _V < (5, 5, 0)
"""5.4: construct_algorithm pops ``class_name`` from the train config's dicts; 5.5 works on deep copies."""

HAS_MIXED_PRECISION = _V >= (5, 5, 0)
"""5.5 added ``use_mixed_precision`` to Distillation."""
