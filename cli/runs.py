"""What the training commands share: the common flags applied to the train config, and the run folder."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from dagmix.cli.checks import check_device, check_eval_flags, check_train_cfg, check_writable_dir
from dagmix.mixing.overrides import apply_overrides


def apply_run_flags(args: argparse.Namespace, cfg: dict, env_over: dict) -> None:
    """Check the common flags and write them and the ``key=value`` overrides into ``cfg`` / ``env_over``."""
    check_device(args.device)
    check_writable_dir(args.log_root, "--log_root")
    check_eval_flags(args)
    if args.max_iterations is not None:
        cfg["max_iterations"] = args.max_iterations
    cfg["seed"] = args.seed
    if args.run_name:
        cfg["run_name"] = args.run_name
    if args.experiment_name:
        cfg["experiment_name"] = args.experiment_name
    cfg["logger"] = _logger_cfg(args, cfg["experiment_name"])
    try:
        apply_overrides(cfg, env_over, args.overrides)
    except ValueError as e:
        raise SystemExit(f"dagmix: {e}") from None
    check_train_cfg(cfg)


def num_envs(args: argparse.Namespace) -> int:
    """Return --num_envs, validated."""
    if args.num_envs < 1:
        raise SystemExit(f"dagmix: --num_envs={args.num_envs} must be >= 1")
    return args.num_envs


def _logger_cfg(args: argparse.Namespace, experiment: str) -> Any:
    if args.logger == "tensorboard":
        return "tensorboard"
    try:
        import wandb  # noqa: F401
    except ModuleNotFoundError as e:
        raise SystemExit("--logger wandb needs the wandb package: pip install 'dagmix[wandb]'") from e
    return {"class_name": "WandbLogWriter", "project_name": args.log_project_name or experiment}


def reserve_log_dir(root: str, experiment: str, run_name: str) -> str:
    """Reserve a new run folder ``<root>/rsl_rl/<experiment>/<timestamp>[_<run_name>]`` and return its path.

    The folder is created here with ``os.mkdir``, which fails if it exists: two runs started in the same second
    (or with the same run name) get distinct folders (``..._2``, ``..._3``, ...) instead of writing into one. Wrap
    the run in :func:`release_if_unused` so that a run refused before it starts leaves no empty folder.
    """
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = os.path.join(root, "rsl_rl", experiment, stamp + (f"_{run_name}" if run_name else ""))
    os.makedirs(os.path.dirname(base), exist_ok=True)
    for n in itertools.count(1):
        path = base if n == 1 else f"{base}_{n}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def release_if_unused(log_dir: str) -> Iterator[None]:
    """Remove the reserved run folder if the run ends with an error before anything was written into it."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(log_dir)  # only an empty folder: a run that wrote params or checkpoints keeps them
        raise


def write_params(log_dir: str, cfg: dict, env_overrides: dict, task: str) -> None:
    """Write the run's train config (``params/agent.json``) and task and env overrides (``params/env.json``)."""
    os.makedirs(os.path.join(log_dir, "params"), exist_ok=True)
    with open(os.path.join(log_dir, "params", "agent.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    with open(os.path.join(log_dir, "params", "env.json"), "w") as f:
        json.dump({"task": task, "overrides": env_overrides}, f, indent=2, default=str)
