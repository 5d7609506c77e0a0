"""Env-steps per second of the built-in quadcopter's ``step()`` alone, with random actions.

Run ``python -m dagmix.benchmarks.env_throughput -h``. Reports the median over repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import torch

from dagmix.envs import make


@dataclass
class Args:
    """Benchmark settings."""

    num_envs: list[int] = field(default_factory=lambda: [1024, 4096, 16384])
    """Env counts to measure."""
    steps: int = 500
    """Env steps per timed repeat."""
    repeats: int = 5
    """Timed repeats; the median is reported."""
    device: str = "cpu"
    """Torch device."""
    task: str = "quadcopter"
    """Built-in task name."""


def measure(task: str, num_envs: int, steps: int, repeats: int, device: str) -> list[float]:
    """Return env-steps per second of each repeat."""
    env = make(task, num_envs=num_envs, device=device, seed=0)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    actions = [torch.rand(num_envs, env.num_actions, generator=gen, device=device) * 2 - 1 for _ in range(8)]
    for i in range(50):  # warm-up
        env.step(actions[i % 8])
    rates = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            env.step(actions[i % 8])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(steps * num_envs / (time.perf_counter() - t0))
    return rates


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse flags, measure, print one line per env count."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=Args().num_envs)
    parser.add_argument("--steps", type=int, default=Args.steps)
    parser.add_argument("--repeats", type=int, default=Args.repeats)
    parser.add_argument("--device", default=Args.device)
    parser.add_argument("--task", default=Args.task)
    args = Args(**vars(parser.parse_args(argv)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, task {args.task}")
    results = []
    for n in args.num_envs:
        rates = measure(args.task, n, args.steps, args.repeats, args.device)
        med = statistics.median(rates)
        print(f"num_envs={n:6d}  {med / 1e6:6.2f} M env-steps/s (median of {args.repeats}; min {min(rates) / 1e6:.2f})")
        results.append({"num_envs": n, "median_steps_per_s": med, "rates": rates})
    return results


if __name__ == "__main__":
    main()
