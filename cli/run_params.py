"""A run's recorded settings (``params/agent.json``, ``params/env.json`` beside its checkpoints) against today's.

``--resume`` and ``eval`` read them to name what differs from the run that wrote a checkpoint: a model key or an
env override (the dynamics, or the observations a model was built for).
"""

from __future__ import annotations

import json
import os
from typing import Any

from dagmix.algorithms.checkpoint_io import MODEL_SECTIONS


def params_path(checkpoint: str, name: str) -> str:
    """Return the path of ``params/<name>`` in the run folder of ``checkpoint``."""
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "params", name)


def _plain(value: Any) -> Any:
    """Return ``value`` as it reads back from the JSON files (tuples as lists, other objects as strings)."""
    return json.loads(json.dumps(value, default=str))


def run_env(checkpoint: str) -> tuple[str, dict[str, Any]] | None:
    """Return the task and env overrides of the run that wrote ``checkpoint`` (its params/env.json), or None."""
    try:
        with open(params_path(checkpoint, "env.json")) as f:
            recorded = json.load(f)
        task, overrides = recorded["task"], recorded.get("overrides") or {}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (task, overrides) if isinstance(overrides, dict) else None


def run_agent(checkpoint: str) -> dict[str, Any] | None:
    """Return the train config of the run that wrote ``checkpoint`` (its params/agent.json), or None."""
    try:
        with open(params_path(checkpoint, "agent.json")) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def env_differences(checkpoint: str, task: str, overrides: dict[str, Any]) -> list[str]:
    """Return ``key=value`` lines for each env setting that differs from the run of ``checkpoint`` (none if unknown).

    A key the run set and this command does not reads ``env.key=<the run's value> (not passed)``; one passed with
    another value ``env.key=<the run's value> (passed <value>)``; one passed that the run left at its default
    ``env.key left at its default (passed <value>)``.
    """
    recorded = run_env(checkpoint)
    if recorded is None:
        return []
    run_task, run_overrides = recorded
    out = [f"--task {run_task} (passed {task})"] if run_task != task else []
    given = _plain(overrides)
    for key, value in run_overrides.items():
        if key not in given:
            out.append(f"env.{key}={value!r} (not passed)")
        elif given[key] != value:
            out.append(f"env.{key}={value!r} (passed {given[key]!r})")
    out += [f"env.{k} left at its default (passed {v!r})" for k, v in given.items() if k not in run_overrides]
    return out


def model_differences(recorded: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Return ``section.key: <recorded> (now <value>)`` for each model key of ``cfg`` that differs from ``recorded``.

    Only the sections of :data:`MODEL_SECTIONS` present in both are compared (one level of keys below each).
    """
    out = []
    for section in MODEL_SECTIONS:
        old, new = recorded.get(section), _plain(cfg.get(section))
        if not isinstance(old, dict) or not isinstance(new, dict):
            continue
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.append(f"{section}.{key}={old.get(key)!r} (now {new.get(key)!r})")
    return out
