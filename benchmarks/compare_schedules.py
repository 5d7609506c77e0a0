"""Which mixing schedule distills best? Multi-seed comparison at an equal env-step budget, with 95% CIs.

Distills a task's teacher (``--task``: by default the shipped quadcopter teacher into the demo's GRU student; the
tasks are in :mod:`dagmix.benchmarks.tasks`) under several mixing schedules, over several seeds, each run with the
same number of iterations (so the same env steps). The student is evaluated alone (no
teacher action ever executed) on fresh episodes of a separate env every ``eval_interval`` iterations and around
the handover (the iterations just before and after beta reaches 0), and once more at the end on many episodes.

Outputs in ``--out-dir``: ``runs/<variant>/seed<k>.json`` (one per finished run: finished runs are skipped when
the script runs again, so it is resumable), ``per_iteration.csv``, ``summary.csv``, ``summary.md`` and the PNG
figures. ``--report-only`` rebuilds the reports from the finished runs.

Run ``python -m dagmix.benchmarks.compare_schedules -h``; benchmarks/RESULTS.md has the committed results.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, TextIO

# The variants and the run bookkeeping live in their own modules; their names stay importable from here, and
# ``run_all`` / ``run_one`` look ``code_version`` up in this module (so tests can replace it here).
from dagmix.benchmarks.run_records import code_version, config_hash, run_path, versions, write_run
from dagmix.benchmarks.variants import (  # noqa: F401
    ALGORITHM_KEYS,
    BASELINE,
    DEFAULT_VARIANTS,
    OVERRIDES_KEY,
    VARIANTS,
    apply_config_overrides,
    mixing_only,
    resolve_variant,
    variant_dir_name,
)

if TYPE_CHECKING:
    from rsl_rl.env import VecEnv

    from dagmix.algorithms import MixingDistillation
    from dagmix.benchmarks.tasks import BenchTask
    from dagmix.envs.evaluation import SameEpisodes


# ------------------------------------------------------------------------------------------------ args
@dataclass
class Args:
    """Benchmark settings (flags are the field names with dashes)."""

    task: str = "quadcopter"
    """Benchmark task: quadcopter, quadcopter_thrown, quadcopter_blind, quadcopter_experts, cue_doors, pendulum or
    mjlab_cartpole_swingup (dagmix.benchmarks.tasks)."""
    schedules: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    """Variants to compare: built-in names, or '<schedule>[:key=value,...]' for any schedule dagmix knows."""
    seeds: int = 5
    """Seeds per variant (first_seed .. first_seed+seeds-1); the same seed gives every variant the same episodes."""
    first_seed: int = 0
    """The first seed (e.g. --first-seed 2 --seeds 1 runs seed 2 alone)."""
    iterations: int | None = None
    """Learning iterations per run (equal env-step budget: iterations * num_envs * steps_per_env); default: the
    task's (quadcopter 200)."""
    num_envs: int | None = None
    """Parallel training envs (default: the task's; quadcopter 1024)."""
    steps_per_env: int | None = None
    """Rollout length per iteration, num_steps_per_env (default: the task's; quadcopter 24)."""
    student: str = "gru"
    """Student model: gru (the task's distillation student; the quadcopters': 128 units), mlp, or filter (the task's
    GRU student as ``dagmix.models:FilterRNNModel``: its GRU also reads its observations' rates of change)."""
    eval_interval: int | None = None
    """Evaluate the student alone every N iterations, and at the last (default: the task's; quadcopter 20)."""
    eval_episodes: int | None = None
    """Episodes per periodic student-alone evaluation (default: the task's; quadcopter 256)."""
    final_eval_episodes: int | None = None
    """Episodes of the final evaluations of the student, the teacher and random actions (default: the task's;
    quadcopter 1000)."""
    handover_offsets: list[int] = field(default_factory=lambda: [-1, 0, 1, 5])
    """Extra evaluations at these offsets from the first beta-0 iteration (the handover)."""
    workers: int = 2
    """Runs in parallel (spawned processes); 1 runs them one after the other in this process."""
    threads: int = 1
    """torch threads per worker."""
    device: str = "cpu"
    """Torch device of each run."""
    env_overrides: list[str] = field(default_factory=list)
    """Env config overrides for every env of a run, as key=value (e.g. episode_length_s=5.0 on the quadcopters)."""
    out_dir: str = "benchmarks/results/compare_schedules"
    """Output folder (runs/ holds one JSON per finished run)."""
    report_only: bool = False
    """Only rebuild the CSVs, table and figures from the finished runs."""
    report_dir: str | None = None
    """Where to write the CSVs, table and figures (default: --out-dir), e.g. to report a subset of the runs."""
    allow_code_change: bool = False
    """Resume next to finished runs made by other dagmix code (another source hash); refused by default."""

    def seed_range(self) -> range:
        """Return the seeds to run and report: first_seed .. first_seed+seeds-1."""
        return range(self.first_seed, self.first_seed + self.seeds)

    def run_config(self) -> dict[str, Any]:
        """Return the settings a run's result depends on (stored with it; resuming with others is refused).

        The thread count and device are part of it: float reductions differ between them, and on this task such
        differences move a final result by up to 0.15 of the teacher's return.
        """
        keys = ("iterations", "num_envs", "steps_per_env", "student", "eval_interval", "eval_episodes")
        cfg = {k: getattr(self, k) for k in (*keys, "final_eval_episodes", "handover_offsets", "threads", "device")}
        if self.task != "quadcopter":  # the quadcopter's runs predate --task: their hash stays what it was
            cfg["task"] = self.task
        if self.env_overrides:
            cfg["env_overrides"] = list(self.env_overrides)
        return cfg

    def env_kwargs(self) -> dict[str, Any]:
        """Return the env overrides as keyword arguments of ``dagmix.envs.make``."""
        from dagmix.mixing.overrides import parse_value

        kwargs = {}
        for item in self.env_overrides:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"--env-overrides item {item!r} is not key=value (e.g. episode_length_s=5.0).")
            if key in ("num_envs", "device", "seed"):
                raise ValueError(f"--env-overrides cannot set {key}: use --num-envs / --device (seeds are per run).")
            kwargs[key] = parse_value(value)
        return kwargs


def check_sizes(parser: argparse.ArgumentParser, args: Args) -> BenchTask:
    """Fill the sizes left unset from ``args.task``'s defaults, refuse bad ones (``parser.error``), return the task."""
    from dagmix.benchmarks.tasks import get_task

    try:
        task = get_task(args.task)
    except ValueError as e:
        parser.error(str(e))
    for name, value in task.defaults.items():  # sizes left unset take the task's
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.first_seed < 0:
        parser.error(f"--first-seed={args.first_seed} must be >= 0")
    for name in ("seeds", "iterations", "num_envs", "steps_per_env", "workers", "threads", "eval_interval"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if args.student not in ("gru", "mlp", "filter"):
        parser.error(f"--student={args.student!r} is not one of 'gru', 'mlp', 'filter'")
    if not 1 <= args.eval_episodes <= 100_000 or not 1 <= args.final_eval_episodes <= 100_000:
        parser.error("--eval-episodes and --final-eval-episodes must be in [1, 100000]")
    return task


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse flags named after the Args fields; validate them."""
    from dagmix.benchmarks._args import dataclass_parser

    parser = dataclass_parser(Args, "python -m dagmix.benchmarks.compare_schedules", __doc__)
    args = Args(**vars(parser.parse_args(argv)))
    task = check_sizes(parser, args)
    if len(set(args.schedules)) != len(args.schedules):
        parser.error(f"--schedules names a variant twice: {args.schedules}")
    try:
        base = task.train_cfg(args.student)
        for name in args.schedules:
            resolve_variant(name, args.iterations, base)
        task.make_env(1, args.device, 0, **args.env_kwargs())  # unknown or bad env keys fail here, not in a worker
    except ImportError as e:
        parser.error(f"--task {args.task} needs {task.needs or 'more packages'} installed: {e}")
    except ValueError as e:
        parser.error(str(e))
    return args


# ------------------------------------------------------------------------------------------------ one run
def _train_cfg(args: Args, mixing: dict[str, Any], seed: int, variant: str = "") -> dict[str, Any]:
    from dagmix.benchmarks.tasks import get_task

    cfg = get_task(args.task).train_cfg(args.student)
    cfg.update(num_steps_per_env=args.steps_per_env, max_iterations=args.iterations, seed=seed, logger="tensorboard")
    cfg["algorithm"]["mixing"] = mixing_only(mixing)
    for key in ALGORITHM_KEYS:
        if key in mixing:
            cfg["algorithm"][key] = mixing[key]
    cfg["algorithm"]["phase_console_output"] = False
    apply_config_overrides(cfg, mixing.get(OVERRIDES_KEY, {}), variant)  # last: a variant may change the student
    return cfg


def evaluate_periodically(
    row: dict[str, Any],
    episodes: SameEpisodes,
    alg: MixingDistillation,
    args: Args,
    console: TextIO,
    label: str,
    seed: int,
    t0: float,
) -> None:
    """Evaluate the student alone, add the ``eval_*`` fields to the iteration's ``row``, print a progress line.

    ``episodes`` is the run's :class:`~dagmix.envs.evaluation.SameEpisodes`: every periodic evaluation replays the
    episodes the teacher is evaluated on (``teacher_eval``), so ``eval_return / teacher_eval`` is a paired ratio.
    ``args`` gives ``iterations``; the line goes to ``console`` (a run's own output goes to its log).
    """
    res = episodes(alg.get_policy(), alg.teacher, alg.teacher_action_clip)
    row.update(
        eval_return=res.return_mean,
        eval_success=res.success_rate,
        eval_final_distance=res.final_distance,
        eval_behavior_loss=res.behavior_loss,
    )
    print(
        f"[compare] {label} seed {seed}: iteration {row['iteration'] + 1}/{args.iterations}, student alone return "
        f"{res.return_mean:.1f}, {(time.time() - t0) / 60:.1f} min",
        file=console,
        flush=True,
    )


def same_episode_evaluations(
    episodes: SameEpisodes, final_env: VecEnv, alg: MixingDistillation, args: Args
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Return the JSON forms of ``teacher_eval`` (on ``episodes``, the periodic ones), ``final``, ``teacher_final``.

    The last student and the teacher are run on the same fresh episodes, so ``final / teacher_final`` is paired.
    """
    from dagmix.envs.evaluation import SameEpisodes

    final_episodes = SameEpisodes(final_env, args.final_eval_episodes)
    final = final_episodes(alg.get_policy(), alg.teacher, alg.teacher_action_clip)
    return episodes(alg.teacher).to_dict(), final.to_dict(), final_episodes(alg.teacher).to_dict()


def random_baselines(
    task: BenchTask, num_actions: int, eval_env: VecEnv, final_env: VecEnv, args: Args, seed: int
) -> dict[str, Any]:
    """Return ``random_eval`` and ``random_final``: uniformly random actions on the periodic and the final episodes.

    They are the zero of the normalised return (``run_records.return_ratio``); {} for a task without one
    (``task.random_action_scale`` None: the quadcopters, plain student / teacher).
    """
    from dagmix.benchmarks.tasks import RandomPolicy
    from dagmix.envs.evaluation import evaluate_policy

    if task.random_action_scale is None:
        return {}
    out = {}
    for key, env, n in (
        ("random_eval", eval_env, args.eval_episodes),
        ("random_final", final_env, args.final_eval_episodes),
    ):
        policy = RandomPolicy(num_actions, task.random_action_scale, seed, args.device)
        out[key] = evaluate_policy(env, policy, n).to_dict()
    return out


def run_one(
    args_dict: dict[str, Any],
    variant: str,
    seed: int,
    path: str,
    label: str | None = None,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Distill one (variant, seed); write its JSON to ``path`` (atomically) and return a short summary.

    ``label`` names the run in the progress lines (default: ``variant``); ``checkpoint``, where given, is where the
    last student is saved (``runner.save``: the checkpoint a hand-off's ``init_student`` reads).
    """
    import torch

    from dagmix.algorithms import MixingDistillationRunner
    from dagmix.benchmarks.tasks import get_task
    from dagmix.envs.evaluation import SameEpisodes

    args = Args(**args_dict)
    task = get_task(args.task)
    torch.set_num_threads(args.threads)
    mixing = resolve_variant(variant, args.iterations, task.train_cfg(args.student))  # overrides checked on its cfg
    cfg = _train_cfg(args, mixing, seed, variant)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t0 = time.time()
    log_path = path[: -len(".json")] + ".log"
    console = sys.stdout  # the runner's per-iteration output goes to the log; a line per evaluation comes here
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        torch.manual_seed(seed)
        kw = args.env_kwargs()
        env = task.make_env(args.num_envs, args.device, seed, **kw)
        eval_env = task.make_env(args.eval_episodes, args.device, 10_000 + seed, **kw)
        episodes = SameEpisodes(eval_env, args.eval_episodes)  # the same episodes at every periodic evaluation
        runner = MixingDistillationRunner(env, cfg, None, args.device)
        task.load_teacher(runner, args.device)
        alg = runner.alg
        zero = alg.schedule.first_zero_iteration()
        handover = {zero + o for o in args.handover_offsets} if zero else set()
        last = args.iterations - 1
        steps_per_it = args.num_envs * args.steps_per_env
        rows: list[dict[str, Any]] = []

        def record(it: int, metrics: dict[str, float], losses: dict[str, float]) -> None:
            row: dict[str, Any] = {
                "iteration": it,
                "env_steps": (it + 1) * steps_per_it,
                "beta": metrics["Distillation/beta"],
                "teacher_fraction": metrics["Distillation/teacher_fraction"],
                "loss_teacher_driven": metrics.get("Distillation/behavior_loss_teacher_driven"),
                "loss_student_driven": metrics.get("Distillation/behavior_loss_student_driven"),
                "adaptive_signal": metrics.get("Distillation/adaptive_signal"),
                "replay_loss": metrics.get("Distillation/replay_loss"),
                "estimator_loss": metrics.get("Distillation/estimator_loss"),  # an EstimatorRNNModel student's
            }
            if it % args.eval_interval == 0 or it == last or it in handover:
                evaluate_periodically(row, episodes, alg, args, console, label or variant, seed, t0)
            row["loss"] = losses.get("behavior")
            rows.append(row)

        alg.iteration_callbacks.append(record)
        runner.learn(args.iterations, init_at_random_ep_len=task.init_at_random_ep_len)
        train_s = time.time() - t0
        if checkpoint is not None:
            runner.save(checkpoint)
        final_env = task.make_env(args.final_eval_episodes, args.device, 20_000 + seed, **kw)
        teacher_eval, final, teacher_final = same_episode_evaluations(episodes, final_env, alg, args)
        baselines = random_baselines(task, env.num_actions, eval_env, final_env, args, seed)
        if task.experts:  # a multi-expert task: the student and each expert alone, on that expert's envs
            from dagmix.benchmarks.experts import per_expert_evaluations

            baselines["per_expert"] = per_expert_evaluations(task, alg, args.final_eval_episodes, args.device, seed, kw)
    result = {
        **({"task": args.task} if args.task != "quadcopter" else {}),
        "variant": variant,
        "seed": seed,
        "mixing": mixing,
        "schedule": alg.schedule.describe(),
        "first_zero_iteration": zero,
        "config": args.run_config(),
        "config_hash": config_hash(args.run_config()),
        "versions": versions(),
        "code": code_version(),
        "train_seconds": train_s,
        "total_seconds": time.time() - t0,
        "yardstick": "same_episodes",
        "teacher_eval": teacher_eval,
        "final": final,
        "teacher_final": teacher_final,
        **baselines,
        "iterations": rows,
    }
    return write_run(path, result)


# ------------------------------------------------------------------------------------------------ scheduling
def run_all(args: Args, run_fn: Callable[[dict[str, Any], str, int, str], dict[str, float]] | None = None) -> None:
    """Run every (variant, seed) that has no finished JSON yet, ``workers`` at a time, with progress lines.

    ``run_fn(args_dict, variant, seed, path)`` runs one (default :func:`run_one`); it must be a module-level function
    (the workers are spawned processes) that writes the run's JSON to ``path`` and returns ``ratio`` and ``seconds``.
    """
    run_fn = run_fn or run_one
    todo = []
    want = config_hash(args.run_config())
    code = code_version()
    for variant in args.schedules:
        for seed in args.seed_range():
            path = run_path(args.out_dir, variant, seed)
            if os.path.isfile(path):
                with open(path) as f:
                    finished = json.load(f)
                have = finished.get("config_hash")
                if have != want:
                    raise SystemExit(
                        f"{path} was produced with other settings (config {have}, now {want}); use another "
                        "--out-dir, or the settings it was run with, instead of mixing results."
                    )
                made_by = (finished.get("code") or {}).get("source_hash")
                if made_by != code["source_hash"] and not args.allow_code_change:
                    raise SystemExit(
                        f"{path} was produced by other dagmix code (source {made_by}, commit "
                        f"{(finished.get('code') or {}).get('commit')}; now source {code['source_hash']}, commit "
                        f"{code['commit']}). Use another --out-dir, or --allow-code-change to mix them knowingly."
                    )
                continue
            todo.append((variant, seed, path))
    total = len(args.schedules) * args.seeds
    print(f"[compare] {total - len(todo)}/{total} runs already finished; {len(todo)} to run, {args.workers} at a time")
    dirty = " (uncommitted changes)" if code["dirty"] else ""
    print(f"[compare] code: commit {code['commit']}{dirty}, source {code['source_hash']}; {args.threads} thread(s)")
    if not todo:
        return
    t0, done = time.time(), 0

    def report(variant: str, seed: int, res: dict[str, float]) -> None:
        elapsed = time.time() - t0
        eta = elapsed / done * (len(todo) - done)
        print(
            f"[compare] {done}/{len(todo)} {variant} seed {seed}: student/teacher return {res['ratio']:.3f} "
            f"({res['seconds']:.0f} s); elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min",
            flush=True,
        )

    if args.workers == 1:  # in this process, one after the other (torch's thread count is restored after)
        import torch

        threads = torch.get_num_threads()
        try:
            for variant, seed, path in todo:
                res = run_fn(dataclasses.asdict(args), variant, seed, path)
                done += 1
                report(variant, seed, res)
        finally:
            torch.set_num_threads(threads)
        return
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_fn, dataclasses.asdict(args), v, s, p): (v, s) for v, s, p in todo}
        for fut in as_completed(futures):
            variant, seed = futures[fut]
            try:
                res = fut.result()
            except Exception as e:  # report which run failed; the others keep going and are kept
                print(f"[compare] FAILED {variant} seed {seed}: {type(e).__name__}: {e}", flush=True)
                continue
            done += 1
            report(variant, seed, res)
    if done < len(todo):
        raise SystemExit(f"[compare] {len(todo) - done} runs failed; see the messages above and runs/*/*.log")


def main(argv: list[str] | None = None) -> None:
    """Run the missing runs (unless --report-only), then write the CSVs, the table and the figures."""
    from dagmix.benchmarks import schedule_report

    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.report_only:
        run_all(args)
    runs = schedule_report.load_runs(
        args.out_dir, args.schedules, args.seed_range(), lambda v, s: run_path(args.out_dir, v, s)
    )
    if not runs:
        raise SystemExit(f"No finished runs under {args.out_dir}/runs for the selected schedules.")
    report_dir = args.report_dir or args.out_dir
    os.makedirs(report_dir, exist_ok=True)
    written = schedule_report.write_reports(runs, report_dir, args.schedules, BASELINE)
    for path in written:
        print(f"[compare] wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
