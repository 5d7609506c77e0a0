"""Checks of the ``dagmix`` command's input, run before anything is created or trained.

Each failure is a one-line ``SystemExit`` naming the flag, key or file and what is expected.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
from typing import Any

import torch

from dagmix.algorithms.checkpoint_io import CheckpointError, UnsafeCheckpointError
from dagmix.algorithms.checkpoint_io import load_checkpoint as load_checkpoint_file


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
                return path, load_checkpoint_file(path, map_location=device, unsafe_load=unsafe_load)
            except UnsafeCheckpointError as e:
                raise SystemExit(f"dagmix: {e}") from None
            except CheckpointError as e:
                print(f"[dagmix] skipping a broken checkpoint: {e}")
    raise SystemExit(
        f"dagmix: no loadable checkpoint matching --load_checkpoint {load_checkpoint!r} in the runs matching "
        f"--load_run {load_run!r} in {base}."
    )


_POSITIVE_INTS = ("num_steps_per_env", "max_iterations", "save_interval")
_POSITIVE_ALGORITHM_INTS = ("num_learning_epochs", "gradient_length", "num_mini_batches")


def check_train_cfg(cfg: dict) -> None:
    """Check the values rsl_rl would only trip over mid-run (a division by zero after an iteration, ...)."""
    checks = [(k, cfg.get(k)) for k in _POSITIVE_INTS]
    checks += [(f"algorithm.{k}", cfg["algorithm"][k]) for k in _POSITIVE_ALGORITHM_INTS if k in cfg["algorithm"]]
    for key, value in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            flag = " (--max_iterations)" if key == "max_iterations" else ""
            raise SystemExit(f"dagmix: {key}={value!r}{flag} must be an integer >= 1.")
    lr = cfg["algorithm"].get("learning_rate")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise SystemExit(f"dagmix: algorithm.learning_rate={lr!r} must be a number > 0, e.g. 1e-3.")
    for section in ("student", "teacher", "actor", "critic"):
        if isinstance(cfg.get(section), dict):
            check_model_cfg(section, cfg[section])


def check_model_cfg(section: str, model_cfg: dict) -> None:
    """Check that every key of a model config is an argument of its ``class_name`` (e.g. no GRU keys on an MLP).

    Keys set to None that the class does not take are removed: ``student.rnn_type=None`` unsets a default key.
    """
    from rsl_rl.utils import resolve_callable

    try:
        cls = resolve_callable(model_cfg.get("class_name"))
    except (ImportError, AttributeError, ValueError, TypeError) as e:
        raise SystemExit(
            f"dagmix: {section}.class_name={model_cfg.get('class_name')!r} cannot be resolved: {e}"
        ) from None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    skip = {"self", "obs", "obs_groups", "obs_set", "output_dim"}
    for key in [k for k in model_cfg if k not in params and k != "class_name" and model_cfg[k] is None]:
        del model_cfg[key]  # key=None on the command line unsets a key of the default config
    unknown = [k for k in model_cfg if k != "class_name" and k not in params]
    if unknown:
        valid = ", ".join(p for p in params if p not in skip)
        unset = " ".join(f"{section}.{k}=None" for k in unknown)
        raise SystemExit(
            f"dagmix: {', '.join(f'{section}.{k}' for k in unknown)}: not an argument of {cls.__name__} (its "
            f"arguments: {valid}). Unset with {unset}, or pick a class that takes it."
        )


def check_device(device: str) -> None:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SystemExit(
            f"dagmix: --device {device!r} is not usable on this machine ({reason}); use --device cpu."
        ) from None


def check_writable_dir(path: str, flag: str) -> None:
    """Exit unless ``path`` is, or can be created as, a writable folder (checked without creating anything)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise SystemExit(f"dagmix: {flag} {path!r} is not a writable folder ({probe!r} is not a writable directory).")


def check_eval_flags(args: argparse.Namespace) -> None:
    for flag in ("eval_interval", "eval_episodes", "final_eval_episodes"):
        if getattr(args, flag, 0) < 0:
            raise SystemExit(f"dagmix: --{flag}={getattr(args, flag)} must be >= 0 (0 turns it off).")
