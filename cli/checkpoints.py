"""Checkpoint files for the ``dagmix`` command: read safely, classified, and found for ``--resume``."""

from __future__ import annotations

import os
import re
from typing import Any

from dagmix.algorithms import checkpoint_io
from dagmix.algorithms.checkpoint_io import CheckpointError, UnsafeCheckpointError
from dagmix.cli.run_params import env_differences, model_differences, run_agent


def load_file(path: str, device: str, unsafe_load: bool) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True (or fully, with --unsafe_load); a bad file is a one-line error."""
    try:
        return checkpoint_io.load_checkpoint(path, map_location=device, unsafe_load=unsafe_load)
    except CheckpointError as e:
        raise SystemExit(f"dagmix: {e}") from None


def restore(runner: Any, loaded: dict[str, Any], path: str, resume: bool, run: dict[str, Any]) -> None:
    """Load ``loaded`` (read from ``path``) into ``runner``; weights that do not fit are a one-line error.

    ``run`` holds the command's ``cfg`` (train config as given), ``task`` and ``env`` overrides. The error names
    the first weight that differs and, for ``--resume``, the model keys and env overrides that differ from the run.
    """
    try:
        checkpoint_io.restore_runner(runner, loaded)
    except RuntimeError as e:
        if "state_dict" not in str(e):
            raise
        gist = checkpoint_io.state_dict_mismatch(e)
        if not resume:
            groups = (run["cfg"].get("obs_groups") or {}).get("teacher")
            raise SystemExit(
                f"dagmix: the teacher in --checkpoint {path} does not fit the teacher of this config ({gist}). Set "
                f"obs_groups.teacher (now {groups!r}; the built-in teachers read ['teacher']) and teacher.* to what "
                "it was trained with (its run's params/agent.json)."
            ) from None
        recorded = (loaded.get("dagmix") or {}).get("model") or run_agent(path) or {}
        diffs = model_differences(recorded, run["cfg"]) + env_differences(path, run["task"], run["env"])
        changed = f" This command differs from that run in: {'; '.join(diffs)}." if diffs else ""
        raise SystemExit(
            f"dagmix: --resume: {path} does not fit the models of this config ({gist}).{changed} Resume with the "
            "run's model keys and env overrides (its params/agent.json and params/env.json), or start a new run."
        ) from None


def checkpoint_kind(loaded: dict[str, Any]) -> str:
    """Return what wrote a loaded checkpoint.

    ``"dagger_ppo"`` (MixingDAggerPPO: an actor and a teacher), ``"ppo"`` (an actor: a teacher),
    ``"distillation"`` (a student and a teacher), or ``"unknown"``.
    """
    if "actor_state_dict" in loaded:
        return "dagger_ppo" if "teacher_state_dict" in loaded else "ppo"
    return "distillation" if "student_state_dict" in loaded else "unknown"


def find_checkpoint(
    root: str, experiment: str, load_run: str, load_checkpoint: str, device: str = "cpu", unsafe_load: bool = False
) -> tuple[str, dict[str, Any]]:
    """Return the newest loadable checkpoint (and its contents) matching ``--load_run`` / ``--load_checkpoint``.

    Runs are tried newest first (by folder name, a timestamp), and in each run ``model_<N>.pt`` by decreasing N,
    then other matches. Broken files (empty, truncated, corrupt) are skipped with a one-line notice; runs without a
    loadable checkpoint (e.g. left by a failed start) are skipped. A file that needs full unpickling is refused.
    """
    base = os.path.join(root, "rsl_rl", experiment)
    try:
        runs = sorted((d for d in os.listdir(base) if re.fullmatch(load_run, d)), reverse=True)
    except OSError:
        runs = []
    if not runs:
        raise SystemExit(f"dagmix: no run matching --load_run {load_run!r} in {base}.")
    for name in runs:
        run = os.path.join(base, name)
        if not os.path.isdir(run):
            continue
        files = [f for f in os.listdir(run) if re.fullmatch(load_checkpoint, f)]
        numbered = sorted(
            ((int(m.group(1)), f) for f in files if (m := re.fullmatch(r"model_(\d+)\.pt", f))), reverse=True
        )
        ordered = [f for _, f in numbered] + sorted(
            (f for f in files if f not in dict(numbered).values()), reverse=True
        )
        for f in ordered:
            path = os.path.join(run, f)
            try:
                return path, checkpoint_io.load_checkpoint(path, map_location=device, unsafe_load=unsafe_load)
            except UnsafeCheckpointError as e:
                raise SystemExit(f"dagmix: {e}") from None
            except CheckpointError as e:
                print(f"[dagmix] skipping a broken checkpoint: {e}")
    raise SystemExit(
        f"dagmix: no loadable checkpoint matching --load_checkpoint {load_checkpoint!r} in the runs matching "
        f"--load_run {load_run!r} in {base}."
    )
