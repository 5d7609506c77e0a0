"""Distillation vs teacher-guided RL (MixingDAggerPPO): multi-seed, equal env-step budget, 95% CIs, per task.

Variants: ``distillation_student_only`` (MixingDistillation with beta 0, i.e. what stock rsl_rl ``Distillation``
does), ``distillation_<v>`` for any compare_schedules variant ``v`` (e.g. ``distillation_two_stage:phase1_iterations=
30``), and the MixingDAggerPPO variants of :data:`DAGGER_PPO` (``ppo_no_teacher``, ``dagger_ppo_fixed``,
``dagger_then_ppo``, ``dagger_ppo_recommended``, ``advisor``, ``recipe``, ``handoff``), each optionally with
algorithm keys after a colon. Tasks: ``--task quadcopter`` (default), ``quadcopter_blind``, ``cue_doors``,
``mjlab_cartpole_swingup`` (mjlab's swing-up, MixingDAggerPPO as ``Mjlab-Cartpole-Swingup-Dagmix-DAggerPPO``
registers it; its training episodes out of step, as in its distillation runs).

Same machinery, flags, resumable output layout and reports as ``compare_schedules`` (``runs/<variant>/seed<k>.json``,
``per_iteration.csv``, ``summary.csv``, ``summary.md``, figures); ``loss`` is the behaviour loss for distillation
runs and the imitation loss for MixingDAggerPPO runs. Run ``python -m dagmix.benchmarks.compare_dagger_ppo -h``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagmix.benchmarks import compare_schedules
from dagmix.benchmarks.run_records import code_version, config_hash, run_path, versions, write_run


def _recommended(n: int) -> dict[str, Any]:
    a, b, c = max(1, round(n / 10)), max(2, round(n / 3)), max(3, round(5 * n / 6))
    return {
        "mixing": {"schedule": "two_stage", "phase1_iterations": a},
        "ppo_coef": {"schedule": "piecewise_linear", "points": [[0, 0.0], [a, 0.0], [max(b, a + 1), 1.0]]},
        "imitation_coef": {"schedule": "piecewise_linear", "points": [[0, 1.0], [b, 1.0], [max(c, b + 1), 0.0]]},
        **FIXED_WEIGHTS,
    }


def _dagger_then_ppo(n: int) -> dict[str, Any]:
    a = max(2, round(n / 3))
    return {
        "mixing": {"schedule": "two_stage", "phase1_iterations": max(1, round(n / 10))},
        "imitation_coef": {"schedule": "two_stage", "phase1_iterations": a},
        "ppo_coef": {"schedule": "piecewise_linear", "points": [[0, 0.0], [a - 1, 0.0], [a, 1.0]]},
        "schedule": "fixed",
        "teacher_action_clip": 1.0,
        **FIXED_WEIGHTS,
        "init_critic_from_teacher": None,
    }


CONSTANT_RATE: dict[str, Any] = {"learning_rate_schedule": "constant"}
"""rsl_rl's ``schedule`` alone sets the learning rate: the rate of every variant measured before the ``auto`` default
(the held cosine decay), kept so that their committed rows keep their meaning."""
FIXED_WEIGHTS: dict[str, Any] = {"imitation_balance": "fixed", "critic_warmup": None, **CONSTANT_RATE}
"""The recipe's per-state balance and critic warm-up off: the loss of the variants measured before the recipe."""

DISTILLATION: dict[str, str] = {
    "distillation_student_only": "student_only",
    "distillation_dagger_exp_0.9": "dagger_exp_0.9",
}
"""Distillation variants: the compare_schedules variant each one runs (``distillation_<variant>`` for any other)."""

DAGGER_PPO: dict[str, Callable[[int], dict[str, Any]]] = {
    "ppo_no_teacher": lambda n: {"imitation_coef": 0.0, "mixing": {"schedule": "student_only"}, **CONSTANT_RATE},
    "dagger_ppo_fixed": lambda n: {  # rsl_rl DaggerPPO's defaults: dagger_loss_coef 1, KL-adaptive lr from 1e-3
        "imitation_coef": 1.0,
        "ppo_coef": 1.0,
        "mixing": {"schedule": "student_only"},
        "schedule": "adaptive",
        "learning_rate": 1e-3,
        **FIXED_WEIGHTS,
    },
    "dagger_then_ppo": _dagger_then_ppo,
    "dagger_ppo_recommended": _recommended,
    "advisor": lambda n: dict(CONSTANT_RATE),
    "recipe": lambda n: {},
    "handoff": lambda n: {"distill_iterations": n // 2, "init_at_random_ep_len": True, **CONSTANT_RATE},
}
"""MixingDAggerPPO variants: algorithm keys over ``dagger_ppo_train_cfg`` as a function of the run length.

- ``ppo_no_teacher``: PPO on the student's observations, no imitation (``imitation_coef`` 0: stock PPO at the
  fixed rate);
- ``dagger_ppo_fixed``: rsl_rl ``DaggerPPO``'s loss: PPO plus imitation at weight 1 on every state, the student
  always driving, the KL-adaptive learning rate from 1e-3;
- ``dagger_then_ppo``: rl_games PR #378's preset: pure DAgger (the teacher drives the first 10%) until 1/3 of the
  run, then PPO without imitation, a fixed learning rate, clipped teacher means, the critic from the teacher's
  checkpoint where it fits;
- ``dagger_ppo_recommended``: MixingDAggerPPO's default before the recipe (teacher drives 10%, PPO ramps in until
  1/3, imitation anneals to 0 at 5/6, fixed weights on every state);
- ``advisor``: the recipe at a constant learning rate, MixingDAggerPPO's defaults before the ``auto`` rate
  (``imitation_balance="advisor"``, no floor; a critic warm-up only with ``init_student``;
  ``learning_rate_schedule="constant"``);
- ``recipe``: MixingDAggerPPO's defaults: ``advisor`` with ``learning_rate_schedule="auto"``, at the fixed 1e-3 of
  ``dagger_ppo_train_cfg`` the rate held for 0.67 of the run, then a cosine to 1e-4; the same runs, bit for bit, as
  ``advisor:learning_rate_schedule=cosine,min_learning_rate=1e-4,learning_rate_decay_start_fraction=0.67`` (the name
  its committed rows carry);
- ``handoff``: the two commands of docs/dagger_ppo.md in one run: dagmix distillation (the task's two-stage default,
  the teacher driving the first fifth) for ``distill_iterations`` (default half the run), then the recipe from that
  student (``init_student``) for the rest, its training episodes out of step as ``dagmix distill --algorithm
  dagger_ppo`` starts them. The budget counts both stages. At the constant rate its rows were made with
  (``handoff:learning_rate_schedule=auto`` for today's default).

Any of them takes algorithm keys after a colon, e.g. ``advisor:imitation_floor=0.0,critic_warmup=None``, and the
run keys of :data:`RUN_KEYS`.
"""

RUN_KEYS = ("init_at_random_ep_len", "distill_iterations")
"""Variant keys that set the run, not the algorithm: ``init_at_random_ep_len`` (start the training envs at random
points of their first episode, rsl_rl's ``learn(init_at_random_ep_len=...)``; default False, ``handoff`` True) and
``distill_iterations`` (``handoff`` only: the iterations of its distillation stage)."""

BASELINE = "distillation_student_only"
RECIPE_SCALARS = (
    "Distillation/imitation_weight",
    "Distillation/advisor_distance",
    "Distillation/explained_variance",
    "Distillation/ppo_warmup",
)
"""The recipe's scalars, recorded per iteration as ``imitation_weight``, ... where they are logged."""


@dataclass
class Args(compare_schedules.Args):
    """Benchmark settings (flags are the field names with dashes); as compare_schedules, other variants."""

    schedules: list[str] = field(default_factory=lambda: [*DISTILLATION, *DAGGER_PPO])
    """Variants to compare (names above)."""
    out_dir: str = "benchmarks/results/compare_dagger_ppo"
    """Output folder (runs/ holds one JSON per finished run)."""


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse flags named after the Args fields; validate them."""
    from dagmix.benchmarks._args import dataclass_parser

    parser = dataclass_parser(Args, "python -m dagmix.benchmarks.compare_dagger_ppo", __doc__)
    args = Args(**vars(parser.parse_args(argv)))
    if args.task not in TASKS:
        parser.error(f"--task={args.task!r}: this benchmark runs {', '.join(TASKS)} (tasks with a DAgger+PPO config)")
    compare_schedules.check_sizes(parser, args)
    if args.student != "gru" and args.task not in ("quadcopter", "quadcopter_blind"):
        parser.error(f"--student={args.student!r}: {args.task}'s MixingDAggerPPO actor is its own student (gru)")
    for variant in args.schedules:
        if variant.partition(":")[0] == "handoff" and args.task not in BUILTIN_HANDOFF:
            parser.error(f"{variant!r}: the handoff variant runs on {', '.join(BUILTIN_HANDOFF)}")
        try:
            resolve_dagger_ppo(variant, args.iterations) if not _is_distillation(variant) else None
        except ValueError as e:
            parser.error(str(e))
    return args


BUILTIN_HANDOFF = ("quadcopter", "quadcopter_blind", "cue_doors")
"""The built-in tasks this benchmark runs; a ``handoff`` runs on these only (its distillation stage is the built-in
two-stage default, the first fifth)."""

TASKS = (*BUILTIN_HANDOFF, "mjlab_cartpole_swingup")
"""The tasks this benchmark runs (each with a ``BenchTask.dagger_ppo``): the built-in ones and mjlab's swing-up."""


def _is_distillation(variant: str) -> bool:
    return variant in DISTILLATION or variant.startswith("distillation_")


def _distillation_variant(variant: str) -> str:
    return DISTILLATION.get(variant) or variant[len("distillation_") :]


def resolve_dagger_ppo(variant: str, iterations: int) -> dict[str, Any]:
    """Return the algorithm keys of a MixingDAggerPPO variant ``name[:key=value,...]``; raise naming the choices."""
    from dagmix.mixing.dagger_ppo_schema import DAGGER_PPO_KEYS
    from dagmix.mixing.overrides import parse_value

    name, _, params = variant.partition(":")
    if name not in DAGGER_PPO:
        raise ValueError(
            f"unknown variant {variant!r}; choose from {', '.join([*DISTILLATION, *DAGGER_PPO])} (or "
            "distillation_<compare_schedules variant>), with MixingDAggerPPO keys after a colon"
        )
    algo = DAGGER_PPO[name](iterations)
    for item in filter(None, re.split(r",(?![^\[\]]*\])", params)):
        key, eq, value = item.partition("=")
        if not eq or key not in (*DAGGER_PPO_KEYS, "learning_rate", "schedule", "entropy_coef", *RUN_KEYS):
            raise ValueError(f"variant {variant!r}: {item!r} is not <MixingDAggerPPO key or run key>=value")
        algo[key] = parse_value(value)
    if "distill_iterations" in algo:
        n = algo["distill_iterations"]
        if name != "handoff":
            raise ValueError(f"variant {variant!r}: distill_iterations belongs to handoff")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < iterations:
            raise ValueError(f"variant {variant!r}: distill_iterations={n!r} must be an int in [1, {iterations - 1}]")
    if not isinstance(algo.get("init_at_random_ep_len", False), bool):
        raise ValueError(f"variant {variant!r}: init_at_random_ep_len must be True or False")
    return algo


def run_one(args_dict: dict[str, Any], variant: str, seed: int, path: str) -> dict[str, float]:
    """Run one (variant, seed): distillation through compare_schedules.run_one, MixingDAggerPPO here."""
    if _is_distillation(variant):
        return compare_schedules.run_one(args_dict, _distillation_variant(variant), seed, path, label=variant)
    return _run_dagger_ppo(Args(**args_dict), variant, seed, path)


def _run_dagger_ppo(args: Args, variant: str, seed: int, path: str) -> dict[str, float]:
    import torch

    from dagmix.benchmarks.tasks import get_task
    from dagmix.envs.evaluation import SameEpisodes
    from dagmix.envs.task_configs import filter_student, student_model

    task = get_task(args.task)
    torch.set_num_threads(args.threads)
    algo = resolve_dagger_ppo(variant, args.iterations)
    out_of_step = algo.pop("init_at_random_ep_len", task.init_at_random_ep_len)
    first = algo.pop("distill_iterations", 0)  # the iterations before this stage (a hand-off's distillation)
    stage = _distillation_stage(args, variant, seed, path, first) if first else None
    if stage is not None:
        algo["init_student"] = stage["checkpoint"]
    runner_class, cfg = task.dagger_ppo()
    cfg.update(num_steps_per_env=args.steps_per_env, max_iterations=args.iterations - first, seed=seed)
    cfg.update(logger="tensorboard")
    cfg["algorithm"].update(algo, phase_console_output=False)
    if args.student == "filter":  # the task's GRU student as a FilterRNNModel, as the distillation stage's
        cfg["actor"] = filter_student(args.task, cfg["actor"])
    elif args.student != "gru":  # the GRU: the task's distillation student (parse_args refuses mlp where none exists)
        cfg["actor"] = student_model(args.student)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t0 = time.time()
    console = sys.stdout  # the runner's output goes to the log; a line per evaluation comes here
    with open(path[: -len(".json")] + ".log", "w") as log, contextlib.redirect_stdout(log):
        torch.manual_seed(seed)
        kw = args.env_kwargs()
        env = task.make_env(args.num_envs, args.device, seed, **kw)
        eval_env = task.make_env(args.eval_episodes, args.device, 10_000 + seed, **kw)
        episodes = SameEpisodes(eval_env, args.eval_episodes)  # the same episodes at every periodic evaluation
        runner = runner_class(env, cfg, None, args.device)
        task.load_teacher(runner, args.device)
        alg = runner.alg
        zero = alg.beta_schedule.first_zero_iteration()
        handover = {zero + o for o in args.handover_offsets} if zero else set()
        steps_per_it = args.num_envs * args.steps_per_env
        rows: list[dict[str, Any]] = []

        def record(it: int, metrics: dict[str, float], losses: dict[str, float]) -> None:
            it += first
            row: dict[str, Any] = {
                "iteration": it,
                "env_steps": (it + 1) * steps_per_it,
                "beta": metrics["Distillation/beta"],
                "teacher_fraction": metrics["Distillation/teacher_fraction"],
                "imitation_coef": metrics["Distillation/imitation_coef"],
                "ppo_coef": metrics["Distillation/ppo_coef"],
                "learning_rate": float(alg.learning_rate),  # the actor's rate after the update (Loss/learning_rate)
                **{k.split("/")[-1]: v for k, v in metrics.items() if k in RECIPE_SCALARS},
            }
            if it % args.eval_interval == 0 or it == args.iterations - 1 or it in handover:
                compare_schedules.evaluate_periodically(row, episodes, alg, args, console, variant, seed, t0)
            rows.append({**row, "loss": losses["imitation"], "surrogate_loss": losses["surrogate"]})

        alg.iteration_callbacks.append(record)
        runner.learn(args.iterations - first, init_at_random_ep_len=out_of_step)
        train_s = time.time() - t0 + (stage["train_seconds"] if stage else 0.0)
        final_env = task.make_env(args.final_eval_episodes, args.device, 20_000 + seed, **kw)
        same_episodes = compare_schedules.same_episode_evaluations
        teacher_eval, final, teacher_final = same_episodes(episodes, final_env, alg, args)
        baselines = compare_schedules.random_baselines(task, env.num_actions, eval_env, final_env, args, seed)
    result = {
        "variant": variant,
        "task": args.task,
        "seed": seed,
        "algorithm": {k: v for k, v in algo.items() if k != "init_student"},  # the checkpoint path is local
        "init_at_random_ep_len": out_of_step,
        "schedule": alg.beta_schedule.describe(),
        "imitation_coef": alg.imitation_coef.describe(),
        "ppo_coef": alg.ppo_coef.describe(),
        "first_zero_iteration": zero,
        "config": args.run_config(),
        "config_hash": config_hash(args.run_config()),
        "versions": versions(),
        "code": code_version(),
        "train_seconds": train_s,
        "total_seconds": time.time() - t0 + (stage["total_seconds"] if stage else 0.0),
        "yardstick": "same_episodes",
        "teacher_eval": teacher_eval,
        "final": final,
        "teacher_final": teacher_final,
        **baselines,
        **({"distillation_stage": {k: stage[k] for k in STAGE_FIELDS}} if stage else {}),
        "iterations": (stage["iterations"] if stage else []) + rows,
    }
    return write_run(path, result)


STAGE_FIELDS = ("variant", "schedule", "train_seconds", "final", "teacher_final", "code")
"""What a hand-off's run record keeps of its distillation stage (its rows join the run's ``iterations``)."""


def _distillation_stage(args: Args, variant: str, seed: int, path: str, iterations: int) -> dict[str, Any]:
    """Run (or find finished) a hand-off's distillation stage: the task's two-stage default for ``iterations``.

    Its record and last student are kept beside the run's (``seed<k>.distillation.json`` / ``.pt``), so a stopped
    hand-off resumes at its second stage. Returns the stage's record with ``checkpoint``, the student's path.
    """
    import dataclasses
    import json

    from dagmix.envs.task_configs import two_stage_phase1

    base = path[: -len(".json")] + ".distillation"
    record, checkpoint = base + ".json", base + ".pt"
    if not (os.path.isfile(record) and os.path.isfile(checkpoint)):
        stage_args = dataclasses.asdict(dataclasses.replace(args, iterations=iterations))
        schedule = f"two_stage:phase1_iterations={two_stage_phase1(iterations)}"  # as distill_train_cfg
        compare_schedules.run_one(
            stage_args, schedule, seed, record, label=f"{variant} (distillation)", checkpoint=checkpoint
        )
    with open(record) as f:
        return {**json.load(f), "checkpoint": checkpoint}


def main(argv: list[str] | None = None) -> None:
    """Run the missing runs (unless --report-only), then write the CSVs, the table and the figures."""
    from dagmix.benchmarks import schedule_report

    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.report_only:
        compare_schedules.run_all(args, run_one)
    runs = schedule_report.load_runs(
        args.out_dir, args.schedules, args.seed_range(), lambda v, s: run_path(args.out_dir, v, s)
    )
    if not runs:
        raise SystemExit(f"No finished runs under {args.out_dir}/runs for the selected variants.")
    report_dir = args.report_dir or args.out_dir
    os.makedirs(report_dir, exist_ok=True)
    baseline = BASELINE if BASELINE in runs else next(iter(runs))
    for written in schedule_report.write_reports(runs, report_dir, args.schedules, baseline):
        print(f"[compare] wrote {written}")


if __name__ == "__main__":
    sys.exit(main())
