"""Throughput of the whole distillation loop: dagmix MixingDistillation vs stock rsl_rl Distillation.

Both run in this process on the same env class and sizes, in interleaved repeats; the report is the median
ratio of env steps per second (dagmix / stock) per mixing mode. Run ``python -m dagmix.benchmarks.overhead -h``.
"""

from __future__ import annotations

import copy
import itertools
import json
import statistics
import time
from dataclasses import dataclass, field

import torch


@dataclass
class Args:
    """Benchmark settings."""

    num_envs: list[int] = field(default_factory=lambda: [1024, 4096, 16384])
    """Env counts to measure."""
    modes: list[str] = field(default_factory=lambda: ["student_only", "step", "episode", "quota"])
    """Mixing modes: student_only (beta 0), step / episode (random, beta 0.5), quota (step, beta 0.5)."""
    student: str = "gru"
    """Student model: gru (the demo's) or mlp."""
    task: str = "quadcopter"
    """Built-in task (the shipped teacher is loaded for the quadcopter)."""
    iterations: int = 3
    """Learning iterations per timed block."""
    repeats: int = 5
    """Interleaved repeats (dagmix and stock blocks, order alternating) per mode; the median ratio is reported."""
    steps_per_env: int = 24
    """Rollout length (num_steps_per_env)."""
    devices: list[str] = field(default_factory=lambda: ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    """Torch devices to measure on (default: the CPU, and CUDA when present)."""
    json_out: str | None = None
    """Optional path to write the results as JSON."""


MODES = {
    "student_only": None,
    "step": {"schedule": "constant", "beta": 0.5, "granularity": "step"},
    "episode": {"schedule": "constant", "beta": 0.5, "granularity": "episode"},
    "quota": {"schedule": "constant", "beta": 0.5, "granularity": "step", "assignment": "quota"},
}


def _cfg(args: Args, algorithm: dict) -> dict:
    from dagmix.envs.task_configs import TEACHER_MODEL, student_model

    return {
        "num_steps_per_env": args.steps_per_env,
        "max_iterations": 10**6,
        "save_interval": 10**6,
        "seed": 0,
        "obs_groups": {"student": ["policy"], "teacher": ["teacher"]},
        "algorithm": {"num_learning_epochs": 1, "gradient_length": 8, **algorithm},
        "student": student_model(args.student),
        "teacher": copy.deepcopy(TEACHER_MODEL),
    }


def _runner(args: Args, device: str, num_envs: int, algorithm: dict) -> object:
    from rsl_rl.runners import DistillationRunner

    from dagmix.envs import make
    from dagmix.envs.task_configs import shipped_teacher

    env = make(args.task, num_envs=num_envs, device=device, seed=0)
    r = DistillationRunner(env, _cfg(args, algorithm), None, device)
    if args.task == "quadcopter":
        r.load(shipped_teacher("quadcopter"), map_location=device)
    else:
        r.alg.teacher_loaded = True  # a random teacher: throughput does not depend on its weights
    return r


def _timed(runner: object, iterations: int, num_envs: int, steps: int, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    runner.learn(iterations)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return iterations * steps * num_envs / (time.perf_counter() - t0)


def run(args: Args) -> list[dict]:
    """Measure every (device, num_envs, mode); return one result dict each."""
    for mode in args.modes:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    return [_measure(args, *combo) for combo in itertools.product(args.devices, args.num_envs, args.modes)]


def _measure(args: Args, device: str, n: int, mode: str) -> dict:
    import contextlib
    import io

    mixing_alg = {"class_name": "dagmix.algorithms:MixingDistillation", "mixing": MODES[mode]}
    with contextlib.redirect_stdout(io.StringIO()):
        stock = _runner(args, device, n, {"class_name": "Distillation"})
        mixing = _runner(args, device, n, {**mixing_alg, "phase_console_output": False})
        stock.learn(1)  # warm-up
        mixing.learn(1)
    ratios, sps_stock, sps_mix = [], [], []
    for rep in range(args.repeats):
        with contextlib.redirect_stdout(io.StringIO()):
            if rep % 2 == 0:  # alternate the order (ABBA) so drifts in machine load cancel out
                a = _timed(mixing, args.iterations, n, args.steps_per_env, device)
                b = _timed(stock, args.iterations, n, args.steps_per_env, device)
            else:
                b = _timed(stock, args.iterations, n, args.steps_per_env, device)
                a = _timed(mixing, args.iterations, n, args.steps_per_env, device)
        sps_mix.append(a)
        sps_stock.append(b)
        ratios.append(a / b)
    res = {
        "num_envs": n,
        "mode": mode,
        "student": args.student,
        "device": device,
        "median_ratio": statistics.median(ratios),
        "ratios": ratios,
        "median_sps_dagmix": statistics.median(sps_mix),
        "median_sps_stock": statistics.median(sps_stock),
    }
    print(
        f"{device:6s} num_envs={n:6d} mode={mode:12s} dagmix {res['median_sps_dagmix']:10.0f} steps/s  "
        f"stock {res['median_sps_stock']:10.0f} steps/s  ratio {res['median_ratio']:.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})",
        flush=True,
    )
    return res


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse command-line flags named after the Args fields."""
    from dagmix.benchmarks._args import dataclass_parser

    parser = dataclass_parser(Args, "python -m dagmix.benchmarks.overhead", __doc__)
    ns = parser.parse_args(argv)
    args = Args(**vars(ns))
    if args.student not in ("mlp", "gru"):
        parser.error(f"--student={args.student!r} is not one of 'mlp', 'gru'")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and optionally write JSON."""
    args = parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, devices {', '.join(args.devices)}")
    results = run(args)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
