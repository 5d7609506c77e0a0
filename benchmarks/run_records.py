"""Run bookkeeping of the comparison benchmarks: where a run's JSON lives, what made its numbers, how they are read.

Each finished run stores the hash of its settings, the library versions and the code version
(:func:`code_version`), so that resuming next to runs made with other settings or code is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from dagmix.benchmarks.variants import variant_dir_name


def config_hash(obj: Any) -> str:
    """Return a short hash of a JSON-serialisable config (the key that says two runs were made alike)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


_SOURCE_EXCLUDE = ("tests", os.path.join("benchmarks", "results"), ".git")


def code_version() -> dict[str, Any]:
    """Return the code that makes a run's numbers: git commit, whether the tree was dirty, and a source hash.

    The source hash covers every ``.py`` file of the dagmix package (tests and results excepted) and the shipped
    teacher, so it changes exactly when the code or the teacher that produce the numbers change. ``commit`` and
    ``dirty`` are None outside a git checkout; ``dirty`` ignores ``benchmarks/results`` (where runs are written).
    """
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        dirs[:] = sorted(d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in _SOURCE_EXCLUDE)
        for name in sorted(files):
            if name.endswith(".py") or name.endswith("_teacher.pt"):
                digest.update(os.path.normpath(os.path.join(rel, name)).encode())
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(f.read())
    commit = dirty = None
    try:
        git = ["git", "-C", root]
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        status = [*git, "status", "--porcelain", "--", ".", ":!benchmarks/results"]
        dirty = bool(subprocess.run(status, capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"commit": commit, "dirty": dirty, "source_hash": digest.hexdigest()[:12]}


def versions() -> dict[str, str]:
    """Return the versions of dagmix, rsl_rl, torch, Python and the machine, as recorded in every run."""
    import platform

    import rsl_rl  # noqa: F401
    import torch

    from dagmix import __version__
    from dagmix.algorithms.compat import RSL_RL_VERSION

    return {
        "dagmix": __version__,
        "rsl_rl": str(RSL_RL_VERSION),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


def run_path(out_dir: str, variant: str, seed: int) -> str:
    """Return the JSON path of (``variant``, ``seed``) under a benchmark's ``out_dir``."""
    return os.path.join(out_dir, "runs", variant_dir_name(variant), f"seed{seed}.json")


def write_run(path: str, result: dict[str, Any]) -> dict[str, float]:
    """Write one finished run's JSON atomically; return its summary (student/teacher return ratio, seconds)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)
    return {"ratio": return_ratio(result, result["final"]["return_mean"], "final"), "seconds": result["total_seconds"]}


def return_ratio(run: dict[str, Any], value: float, which: str = "eval") -> float:
    """Return ``value`` (a return on the run's ``eval`` or ``final`` episodes) as a fraction of the teacher's.

    (value - random) / (teacher - random), with the random-action return the run recorded on the same episodes
    (``random_eval`` / ``random_final``); 0 where it recorded none (the quadcopter: plain value / teacher).
    """
    random = (run.get(f"random_{which}") or {}).get("return_mean", 0.0)
    teacher = run[f"teacher_{which}"]["return_mean"]
    return (value - random) / (teacher - random)


THRESHOLDS = (0.90, 0.95)
"""Fractions of the teacher's return for the steps-to-threshold metrics and figures."""


def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """Return (mean, 95% Student-t half-width, n) of the finite values (nan half-width when n < 2)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(x[0]), float("nan"), 1
    return float(x.mean()), float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)), n
