"""Where the quadcopter's teacher ends its episodes, and how the students' success follows their final distance.

Run ``python -m dagmix.benchmarks.hover_offset -h``. Two reports:

1. The shipped quadcopter teacher on ``--episodes`` fresh episodes (seed ``--seed``), stepped to one step before the
   time-out: the mean goal-minus-position offset per world axis, its mean absolute value, the mean distance, the
   mean horizontal speed, and the correlation of the height offset with the drone's mass ratio and thrust-to-weight.
2. Every committed quadcopter run under ``--results`` (``runs/*/seed*.json`` of each folder) that ended within
   ``--max-distance`` of the goal: its success rate binned by its mean final distance, as a markdown table, and
   the correlation of the two. Only the runs' ``final`` entries are read; nothing is trained.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from dagmix.benchmarks._args import dataclass_parser


@dataclass
class Args:
    """Report settings."""

    episodes: int = 512
    """Fresh teacher episodes (one per env)."""
    seed: int = 123
    """Env seed of the teacher's episodes."""
    results: str = "benchmarks/results"
    """Folder whose subfolders hold ``runs/*/seed*.json`` (compare_schedules' layout)."""
    max_distance: float = 0.2
    """Runs that ended farther from the goal on average (m) are left out of the table."""
    bins: list[float] = field(default_factory=lambda: [0.0705, 0.072, 0.075, 0.08, 0.09])
    """Inner edges of the final-distance bins (m)."""
    threads: int = 1
    """Torch threads."""


def teacher_offsets(episodes: int, seed: int) -> dict[str, Any]:
    """Run the shipped quadcopter teacher alone and return where it is one step before its episodes time out."""
    from dagmix.algorithms import MixingDistillationRunner
    from dagmix.benchmarks.tasks import get_task
    from dagmix.envs.quadcopter import GOAL, POS, VEL

    task = get_task("quadcopter")
    env = task.make_env(episodes, "cpu", seed)
    with contextlib.redirect_stdout(io.StringIO()):  # the runner prints the models
        runner = MixingDistillationRunner(env, task.train_cfg("gru"), None, "cpu")
    task.load_teacher(runner, "cpu")
    teacher = runner.alg.teacher.eval()
    obs = env.reset()
    with torch.no_grad():
        for _ in range(int(env.max_episode_length) - 1):  # no env times out, none resets
            obs, _, dones, _ = env.step(teacher(obs))
    if bool(dones.any()):
        raise RuntimeError("an episode ended early (a crash): the offsets would mix fresh and final states")
    rel = env.state[GOAL] - env.state[POS]  # (3, episodes), world frame
    t = env.get_observations()["teacher"]
    corr = torch.corrcoef(torch.stack([rel[2], t[:, 12], t[:, 13]]))[0]
    return {
        "offset_mean": rel.mean(1).tolist(),
        "offset_abs_mean": rel.abs().mean(1).tolist(),
        "distance_mean": rel.norm(dim=0).mean().item(),
        "horizontal_speed_mean": env.state[VEL][:2].norm(dim=0).mean().item(),
        "corr_height_mass": corr[1].item(),
        "corr_height_thrust_to_weight": corr[2].item(),
    }


def run_points(results: str, max_distance: float) -> list[tuple[float, float]]:
    """Return (final distance, success rate) of every quadcopter run under ``results`` within ``max_distance``."""
    points = []
    for path in sorted(glob.glob(os.path.join(results, "*", "runs", "*", "seed*.json"))):
        with open(path) as f:
            run = json.load(f)
        final = run.get("final") or {}
        if run.get("task", "quadcopter") != "quadcopter" or "final_distance" not in final:
            continue
        if final["final_distance"] <= max_distance:
            points.append((final["final_distance"], final["success_rate"]))
    return points


def success_table(points: list[tuple[float, float]], bins: list[float]) -> str:
    """Return a markdown table of success (min / mean / max) per final-distance bin."""
    edges = [0.0, *bins, float("inf")]
    lines = ["| mean final distance (m) | runs | success, min / mean / max |", "|---|---|---|"]
    for lo, hi in zip(edges, edges[1:], strict=False):
        s = [y for x, y in points if lo <= x < hi]
        name = f"< {hi}" if lo == 0.0 else f">= {lo}" if hi == float("inf") else f"{lo}-{hi}"
        if s:
            lines.append(f"| {name} | {len(s)} | {min(s):.3f} / {statistics.mean(s):.3f} / {max(s):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Print both reports; return them."""
    parser = dataclass_parser(Args, "python -m dagmix.benchmarks.hover_offset", __doc__)
    args = Args(**vars(parser.parse_args(argv)))
    if args.episodes < 2:
        parser.error("--episodes must be at least 2 (a correlation needs two episodes)")
    if sorted(args.bins) != args.bins:
        parser.error(f"--bins must be increasing, got {args.bins}")
    torch.set_num_threads(args.threads)
    teacher = teacher_offsets(args.episodes, args.seed)
    x, y, z = teacher["offset_mean"]
    ax, ay, az = teacher["offset_abs_mean"]
    print(f"[hover] teacher, {args.episodes} episodes: goal - position mean ({x:+.4f}, {y:+.4f}, {z:+.4f}) m")
    print(
        f"[hover] mean |goal - position| per axis ({ax:.4f}, {ay:.4f}, {az:.4f}) m; "
        f"distance {teacher['distance_mean']:.4f} m; horizontal speed {teacher['horizontal_speed_mean']:.3f} m/s"
    )
    print(
        f"[hover] correlation of the height offset with the mass ratio {teacher['corr_height_mass']:+.2f}, "
        f"with thrust-to-weight {teacher['corr_height_thrust_to_weight']:+.2f}"
    )
    points = run_points(args.results, args.max_distance)
    table = success_table(points, args.bins)
    corr = statistics.correlation([p[0] for p in points], [p[1] for p in points]) if len(points) > 2 else None
    print(f"[hover] {len(points)} quadcopter runs under {args.results} within {args.max_distance} m")
    if corr is not None:
        print(f"[hover] correlation of success with the final distance {corr:+.2f}")
    print(table)
    return {"teacher": teacher, "runs": len(points), "correlation": corr, "table": table}


if __name__ == "__main__":
    main()
