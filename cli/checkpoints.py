"""Checkpoint files for the ``dagmix`` command: read safely, classified, and found for ``--resume``."""

from __future__ import annotations

import os
import re
from typing import Any

from dagmix.algorithms import checkpoint_io
from dagmix.algorithms.checkpoint_io import CheckpointError, UnsafeCheckpointError


def load_file(path: str, device: str, unsafe_load: bool) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True (or fully, with --unsafe_load); a bad file is a one-line error."""
    try:
        return checkpoint_io.load_checkpoint(path, map_location=device, unsafe_load=unsafe_load)
    except CheckpointError as e:
        raise SystemExit(f"dagmix: {e}") from None


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
