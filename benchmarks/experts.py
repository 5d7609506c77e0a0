"""Multi-expert distillation, per expert: the student on each expert's envs vs that expert alone.

``compare_schedules --task quadcopter_experts`` calls :func:`per_expert_evaluations` at the end of every run and
stores the result as ``per_expert`` in the run's JSON. This script's ``main`` reads the runs of several
``compare_schedules`` output folders (the student distilled from both experts, and students distilled from one
expert each, ``--env-overrides expert_cycle=[k]``) and writes the per-expert table, means with 95% CIs over seeds
(``--runs "both experts=DIR" "level expert only=DIR" ...``; the commands are in docs/multi_teacher.md).
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagmix.algorithms import MixingDistillation
    from dagmix.benchmarks.tasks import BenchTask


def per_expert_evaluations(
    task: BenchTask, alg: MixingDistillation, num_episodes: int, device: str, seed: int, env_kwargs: dict[str, Any]
) -> list[dict]:
    """Return, per expert ``k``, the last student and expert ``k`` alone on the same fresh episodes of its envs.

    Expert ``k``'s envs are ``task.make_env`` with ``task.expert_env(k)`` on top of ``env_kwargs``, seeded as the
    run's final evaluation (``20_000 + seed``), ``num_episodes`` of them on ``device``. The student's
    ``behavior_loss`` is measured against expert ``k``.

    Returns:
        One dict per expert: ``expert`` (k), ``name``, ``student`` and ``expert_alone`` (EvalResult JSON forms).
    """
    from dagmix.algorithms import compat
    from dagmix.envs.evaluation import SameEpisodes

    experts = compat.raw_teacher(alg).experts
    out = []
    for k, name in enumerate(task.experts):
        kwargs = {**env_kwargs, **task.expert_env(k)}
        env = task.make_env(num_episodes, device, 20_000 + seed, **kwargs)
        episodes = SameEpisodes(env, num_episodes)
        student = episodes(alg.get_policy(), experts[k], alg.teacher_action_clip)
        out.append(
            {"expert": k, "name": name, "student": student.to_dict(), "expert_alone": episodes(experts[k]).to_dict()}
        )
    return out


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class Args:
    """Report settings (flags are the field names with dashes)."""

    runs: list[str] = field(default_factory=list)
    """'LABEL=DIR' per compare_schedules output folder of the task (e.g. 'both experts=.../both'); rows in order."""
    out: str = ""
    """Also write the table (markdown) to this file."""


def _mean_ci(values: list[float]) -> str:
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return f"{mean:.3f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return f"{mean:.3f} ± {float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n):.3f}"


def table(groups: dict[str, list[dict[str, Any]]]) -> str:
    """Return the markdown table of the runs' ``per_expert`` results: a row per (label, variant, expert).

    Args:
        groups: Per label, the run JSONs (dicts) of that output folder.
    """
    lines = [
        "| students trained on | variant | on the envs of | student / expert return | student success "
        "| expert success | seeds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in groups.items():
        for variant in dict.fromkeys(r["variant"] for r in runs):
            chosen = [r for r in runs if r["variant"] == variant and r.get("per_expert")]
            if not chosen:
                continue
            for k, first in enumerate(chosen[0]["per_expert"]):
                rows = [r["per_expert"][k] for r in chosen]
                ratio = [e["student"]["return_mean"] / e["expert_alone"]["return_mean"] for e in rows]
                success = [e["student"]["success_rate"] for e in rows]
                expert = [e["expert_alone"]["success_rate"] for e in rows]
                lines.append(
                    f"| {label} | {variant} | {first['name']} (expert {k}) | {_mean_ci(ratio)} | {_mean_ci(success)} "
                    f"| {_mean_ci(expert)} | {len(rows)} |"
                )
    lines.append(
        "\n(± : half-width of the 95% Student-t interval over seeds; each run's student and expert on the same "
        "fresh episodes of that expert's envs)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Read the runs of each ``--runs`` folder and print (and with ``--out``, write) the per-expert table."""
    from dagmix.benchmarks._args import dataclass_parser

    parser = dataclass_parser(Args, "python -m dagmix.benchmarks.experts", __doc__)
    args = Args(**vars(parser.parse_args(argv)))
    groups = {}
    for item in args.runs:
        label, eq, path = item.partition("=")
        if not eq or not label or not path:
            parser.error(f"--runs item {item!r} is not LABEL=DIR")
        runs = []
        for name in sorted(glob.glob(os.path.join(path, "runs", "*", "seed*.json"))):
            with open(name) as f:
                runs.append(json.load(f))
        if not any(r.get("per_expert") for r in runs):
            parser.error(f"{path}: no finished run with per-expert results (from a multi-expert --task)")
        groups[label] = runs
    if not groups:
        parser.error("give at least one --runs LABEL=DIR")
    text = table(groups)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
