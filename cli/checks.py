"""Checks of the ``dagmix`` command's input, run before anything is created or trained.

Each failure is a one-line ``SystemExit`` naming the flag, key or file and what is expected.
"""

from __future__ import annotations

import argparse
import inspect
import os

import torch

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
    seed = cfg.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and not -(2**63) <= seed < 2**63:  # torch's: 64 bits
        raise SystemExit(f"dagmix: seed={seed} (--seed) does not fit 64 bits; use an integer in [-2**63, 2**63).")
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
    """Exit unless ``device`` can hold a tensor on this machine."""
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
    """Exit if an evaluation size or interval is negative."""
    for flag in ("eval_interval", "eval_episodes", "final_eval_episodes"):
        if getattr(args, flag, 0) < 0:
            raise SystemExit(f"dagmix: --{flag}={getattr(args, flag)} must be >= 0 (0 turns it off).")
