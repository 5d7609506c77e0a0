"""``dagmix distill``: one pipeline for both algorithms (MixingDistillation, MixingDAggerPPO).

The student is evaluated alone as it trains, beside the teacher on the same episodes (the best is saved as
``model_best.pt``), and at the end, beside the teacher, on the same fresh episodes; a figure of the periodic
evaluations and beta is written beside the checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from dagmix.algorithms import checkpoint_io
from dagmix.algorithms.finite_guard import NonFiniteError
from dagmix.cli.checkpoints import checkpoint_kind, find_checkpoint, load_file, restore
from dagmix.cli.figure import write_figure
from dagmix.cli.models import format_table, load_models, make_env
from dagmix.cli.runs import apply_run_flags, num_envs, release_if_unused, reserve_log_dir, write_params
from dagmix.envs.task_configs import dagger_ppo_train_cfg, distill_train_cfg, shipped_teacher
from dagmix.mixing.multi_teacher_schema import multi_teacher_checkpoints
from dagmix.models import SelectorError

if TYPE_CHECKING:
    from rsl_rl.env import VecEnv

    from dagmix.algorithms import MixingDAggerPPO, MixingDistillation

    MixingAlgorithm = MixingDistillation | MixingDAggerPPO


def _runner_class(args: argparse.Namespace, kind: str) -> type:
    from rsl_rl.runners import DistillationRunner, OnPolicyRunner

    from dagmix.algorithms import MixingDistillationRunner

    if kind == "dagger_ppo":  # MixingDAggerPPO runs under rsl_rl's OnPolicyRunner
        return OnPolicyRunner
    return DistillationRunner if args.runner == "stock" else MixingDistillationRunner  # stock: as `isaaclab train`


@dataclass(frozen=True)
class Algorithm:
    """What ``dagmix distill --algorithm`` changes in the pipeline."""

    label: str  # its name in console lines and errors
    kind: str  # the checkpoint_kind of the checkpoints it writes
    holds: str  # what such a checkpoint holds (named when --resume finds another kind)
    train_cfg: Callable[[str], dict[str, Any]]  # the task's default train config
    out_of_step: bool  # the default of --init_at_random_ep_len


ALGORITHMS = {
    "distillation": Algorithm(
        "distillation",
        "distillation",
        "no student_state_dict; a PPO checkpoint?",
        distill_train_cfg,
        False,  # the demo's and the results' distillation runs start in step
    ),
    "dagger_ppo": Algorithm(
        "MixingDAggerPPO",
        "dagger_ppo",
        "it needs both actor_state_dict and teacher_state_dict",
        dagger_ppo_train_cfg,
        # in step, the envs that survive time out together: every rollout then holds one phase of the episode,
        # and the critic never explains the returns (benchmarks/RESULTS.md, "quadcopter_blind")
        True,
    ),
}


def cmd_distill(args: argparse.Namespace) -> int:
    """Train the student with the chosen algorithm; evaluate it alone as it trains; print the final table."""
    algo = ALGORITHMS[args.algorithm]
    cfg, env_over = algo.train_cfg(args.task), {}
    if args.init_student is not None:
        if algo.kind != "dagger_ppo":
            raise SystemExit("dagmix: --init_student initialises the actor of --algorithm dagger_ppo; add that flag.")
        cfg["algorithm"]["init_student"] = os.path.abspath(args.init_student)
    if args.schedule is not None:
        cfg["algorithm"]["mixing"] = {"schedule": args.schedule}
    if args.phase1_iterations is not None:
        mixing = cfg["algorithm"].setdefault("mixing", {})
        if args.schedule is None and mixing.get("schedule", "student_only") == "student_only":
            mixing["schedule"] = "two_stage"  # --phase1_iterations alone: the teacher drives first (dagger_ppo)
        mixing["phase1_iterations"] = args.phase1_iterations
    apply_run_flags(args, cfg, env_over)
    mixing_given = args.schedule is not None or args.phase1_iterations is not None
    mixing_given |= any(o.startswith("algorithm.mixing.") for o in args.overrides)
    if cfg["algorithm"].get("use_two_stage_training") is True and not mixing_given:
        del cfg["algorithm"]["mixing"]  # the two-stage patch's keys replace the default mixing schedule
    env = make_env(args.task, num_envs(args), args.device, cfg["seed"], env_over)
    checkpoint, loaded = _checkpoint(args, cfg, algo)
    log_dir = reserve_log_dir(args.log_root, cfg["experiment_name"], cfg["run_name"])
    with release_if_unused(log_dir):
        params = copy.deepcopy(cfg)  # as given: rsl-rl 5.4 pops keys (class_name) of the config it is built from
        torch.manual_seed(cfg["seed"])
        try:
            runner = _runner_class(args, algo.kind)(env, cfg, log_dir, args.device)
            if loaded is None:  # a multi-teacher: its experts' checkpoints were loaded as it was built
                print(f"[dagmix] experts (teacher section's checkpoints): {', '.join(cfg['teacher']['checkpoints'])}")
            else:
                print(f"[dagmix] loading {'run' if args.resume else 'teacher'} checkpoint {checkpoint}")
                restore(runner, loaded, checkpoint, args.resume, {"cfg": params, "task": args.task, "env": env_over})
        except ValueError as e:
            raise SystemExit(f"dagmix: {e}") from e
        write_params(log_dir, params, env_over, args.task)  # the run folder appears only once the run can start
        print(f"[dagmix] {runner.alg.describe()}")
        if args.eval_episodes > 0 and args.eval_interval > 0:
            eval_env = make_env(args.task, args.eval_episodes, args.device, cfg["seed"] + 10_000, env_over)
            last_it = runner.current_learning_iteration + cfg["max_iterations"] - 1
            evaluate = PeriodicEval(runner.alg, eval_env, args.eval_episodes, args.eval_interval, last_it, log_dir)
            runner.alg.iteration_callbacks.append(evaluate)
        else:
            evaluate = None
        out_of_step = algo.out_of_step if args.init_at_random_ep_len is None else args.init_at_random_ep_len
        if out_of_step:
            print("[dagmix] the training envs start at random points of their first episode (init_at_random_ep_len)")
        t0 = time.time()
        try:
            runner.learn(cfg["max_iterations"], init_at_random_ep_len=out_of_step)
        except (NonFiniteError, SelectorError) as e:  # a bad teacher, env or selector: one line; nothing bad saved
            raise SystemExit(f"dagmix: {e}") from None
        print(f"[dagmix] {algo.label} took {time.time() - t0:.0f} s; checkpoints in {log_dir}")
        if args.final_eval_episodes > 0:
            _final_table(args, runner.alg, log_dir, cfg["seed"], env_over)
        if evaluate is None:
            print("[dagmix] no figure: the periodic evaluation is off (--eval_interval 0 or --eval_episodes 0)")
        elif (figure := write_figure(log_dir, evaluate.evals, evaluate.betas)) is not None:
            print(f"[dagmix] figure: {figure}")
        return 0


def _checkpoint(args: argparse.Namespace, cfg: dict, algo: Algorithm) -> tuple[str | None, dict[str, Any] | None]:
    """Return the path and contents of the run to resume (``--resume``) or of the teacher (PPO) checkpoint.

    (None, None) for a multi-teacher whose experts' checkpoints are in its section (loaded as it is built).
    """
    if not args.resume and (experts := multi_teacher_checkpoints(cfg)) is not None:
        if args.checkpoint is not None:
            raise SystemExit(
                f"dagmix: --checkpoint: the teacher of --task {args.task} is a multi-teacher whose experts are loaded "
                f"from its section's checkpoints ({len(experts)}); drop --checkpoint, or replace them with "
                "teacher.checkpoints=[PATH,...]."
            )
        return None, None
    if args.resume:
        path, loaded = find_checkpoint(
            args.log_root, cfg["experiment_name"], args.load_run, args.load_checkpoint, args.device, args.unsafe_load
        )
        if checkpoint_kind(loaded) != algo.kind:
            raise SystemExit(
                f"dagmix: --resume found {path}, which is not a {algo.label} checkpoint ({algo.holds}). Pass the "
                "teacher with --checkpoint instead, or pick the run with --load_run."
            )
        return path, loaded
    try:
        path = args.checkpoint or shipped_teacher(args.task)
    except ValueError as e:
        raise SystemExit(f"dagmix: {e}") from None
    loaded = load_file(path, args.device, args.unsafe_load)
    kind = checkpoint_kind(loaded)
    if kind in ALGORITHMS:  # a run of `dagmix distill`, not a teacher
        resume = "To continue that run use --resume (with --load_run to pick it); to distill, pass"
        raise SystemExit(
            f"dagmix: --checkpoint {path} is a {ALGORITHMS[kind].label} checkpoint, not a teacher (PPO) checkpoint. "
            f"{resume if kind == algo.kind else 'Pass'} the teacher's PPO checkpoint."
        )
    if "actor_state_dict" not in loaded:
        raise SystemExit(f"dagmix: --checkpoint {path} is not an rsl_rl PPO checkpoint (no actor_state_dict).")
    return path, loaded


class PeriodicEval:
    """The iteration callback that evaluates the student alone every ``interval`` iterations, beside the teacher.

    Every evaluation replays the same episodes (:class:`~dagmix.envs.evaluation.SameEpisodes`); the teacher is
    deterministic there, so its result on them is measured once and logged at every evaluation
    (``Eval/teacher_return``, ``Eval/teacher_success_rate``) with the paired ``Eval/return_ratio``. A better
    evaluation by the rule ``BEST_RULE`` writes ``model_best.pt`` atomically (with its evaluation under
    ``infos``). Beta is recorded every iteration for the figure.
    """

    def __init__(
        self, alg: MixingAlgorithm, eval_env: VecEnv, episodes: int, interval: int, last_it: int, log_dir: str
    ) -> None:
        from dagmix.envs.evaluation import SameEpisodes

        self.alg, self.interval, self.last_it, self.log_dir = alg, interval, last_it, log_dir
        self.episodes = SameEpisodes(eval_env, episodes)
        self.teacher: Any = None  # EvalResult of the teacher on the episodes, measured at the first evaluation
        self.best: tuple[float, float] | None = None
        self.evals: list[dict[str, Any]] = []
        self.betas: list[tuple[int, float]] = []

    def __call__(self, it: int, metrics: dict[str, float]) -> dict[str, float] | None:
        """Record beta; at an evaluation iteration, evaluate, maybe save ``model_best.pt``, print and log."""
        from dagmix.algorithms.phase_log import SCALAR_BETA
        from dagmix.envs.evaluation import best_key

        if SCALAR_BETA in metrics:
            self.betas.append((it, float(metrics[SCALAR_BETA])))
        if it % self.interval != 0 and it != self.last_it:
            return None
        if self.teacher is None:
            self.teacher = self.episodes(self.alg.teacher)
        res, teacher = self.episodes(self.alg.get_policy()), self.teacher
        ratio = res.return_mean / teacher.return_mean if teacher.return_mean > 0 else float("nan")
        key = best_key(res)
        if self.best is None or key > self.best:
            self.best = key
            saved = self.alg.save()
            saved.update(iter=it, infos={"eval": res.to_dict(), "teacher_eval": teacher.to_dict()})
            checkpoint_io.save_checkpoint(saved, os.path.join(self.log_dir, "model_best.pt"))
        self.evals.append(
            {
                "iteration": it,
                "return_ratio": ratio,
                "success_rate": res.success_rate,
                "teacher_success_rate": teacher.success_rate,
            }
        )
        print(
            f"[dagmix] iteration {it}: student alone over {res.num_episodes} episodes: return "
            f"{res.return_mean:.2f} ± {res.return_ci95:.2f}, success {res.success_rate:.3f}, "
            f"final distance {res.final_distance:.3f} m; the teacher on the same episodes: return "
            f"{teacher.return_mean:.2f}, success {teacher.success_rate:.3f} (student / teacher {ratio:.3f})"
        )
        return {
            "Eval/student_return": res.return_mean,
            "Eval/student_success_rate": res.success_rate,
            "Eval/student_final_distance": res.final_distance,
            "Eval/teacher_return": teacher.return_mean,
            "Eval/teacher_success_rate": teacher.success_rate,
            "Eval/return_ratio": ratio,
        }


def _final_table(args: argparse.Namespace, alg: MixingAlgorithm, log_dir: str, seed: int, env_over: dict) -> None:
    """Print the last student, the best (``model_best.pt``) and the teacher, each alone, on the same fresh episodes."""
    from dagmix.envs.evaluation import BEST_RULE, SameEpisodes

    n = args.final_eval_episodes
    final_env = make_env(args.task, n, args.device, seed + 20_000, env_over)
    episodes = SameEpisodes(final_env, n)
    rows = {"student": episodes(alg.get_policy())}
    best_path = os.path.join(log_dir, "model_best.pt")
    if os.path.isfile(best_path):
        loaded = load_file(best_path, args.device, False)
        best = load_models(args.task, best_path, loaded, args.device, final_env)[0]["student"]
        rows[f"best@{loaded['iter']}"] = episodes(best)
    rows["teacher"] = episodes(alg.teacher)
    print(
        f"[dagmix] final evaluation on {n} fresh episodes, the same for each row: the last student, the best by "
        "periodic evaluation, the teacher"
    )
    print(format_table(rows))
    for name, res in rows.items():
        if name != "teacher":
            teacher_return = rows["teacher"].return_mean  # a ratio only means something over a positive return
            ratio = f"{res.return_mean / teacher_return:.3f}" if teacher_return > 0 else "n/a (teacher's return <= 0)"
            print(f"[dagmix] {name} / teacher return: {ratio}")
    if len(rows) == 3:
        print(f"[dagmix] best: the periodic evaluation with the {BEST_RULE}")
