"""The ``dagmix`` command: train-teacher, distill, eval and export on the built-in tasks."""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import torch

from dagmix import _cli_checks
from dagmix._cli_checks import find_checkpoint
from dagmix.algorithms.finite_guard import NonFiniteError
from dagmix.cli_models import _format_table, _load_file, _load_models, _make_env, cmd_eval, cmd_export, periodic_eval
from dagmix.envs.task_configs import apply_overrides, distill_train_cfg, shipped_teacher, teacher_train_cfg

SCHEDULE_HELP = "mixing schedule: a kind or preset (see docs/schedules.md), e.g. two_stage, student_only, dagger_exp"


# ---------------------------------------------------------------------------------------------------- helpers
def _log_dir(root: str, experiment: str, run_name: str) -> str:
    """Reserve a new run folder ``<root>/rsl_rl/<experiment>/<timestamp>[_<run_name>]`` and return its path.

    The folder is created here with ``os.mkdir``, which fails if it exists: two runs started in the same second
    (or with the same run name) get distinct folders (``..._2``, ``..._3``, ...) instead of writing into one. Wrap
    the run in :func:`_release_if_unused` so that a run refused before it starts leaves no empty folder.
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
def _release_if_unused(log_dir: str) -> Iterator[None]:
    """Remove the reserved run folder if the run ends with an error before anything was written into it."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(log_dir)  # only an empty folder: a run that wrote params or checkpoints keeps them
        raise


def _logger_cfg(args: argparse.Namespace, experiment: str) -> Any:
    if args.logger == "tensorboard":
        return "tensorboard"
    try:
        import wandb  # noqa: F401
    except ModuleNotFoundError as e:
        raise SystemExit("--logger wandb needs the wandb package: pip install 'dagmix[wandb]'") from e
    return {"class_name": "WandbLogWriter", "project_name": args.log_project_name or experiment}


def _write_params(log_dir: str, cfg: dict, env_overrides: dict, task: str) -> None:
    os.makedirs(os.path.join(log_dir, "params"), exist_ok=True)
    with open(os.path.join(log_dir, "params", "agent.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    with open(os.path.join(log_dir, "params", "env.json"), "w") as f:
        json.dump({"task": task, "overrides": env_overrides}, f, indent=2, default=str)


# ---------------------------------------------------------------------------------------------------- commands
def cmd_train_teacher(args: argparse.Namespace) -> int:
    """Train the privileged teacher with rsl_rl PPO (OnPolicyRunner)."""
    from rsl_rl.runners import OnPolicyRunner

    from dagmix.envs.evaluation import evaluate_policy

    cfg, env_over = teacher_train_cfg(args.task), {}
    _apply_common(args, cfg, env_over)
    env = _make_env(args.task, cfg_num_envs(args), args.device, cfg["seed"], env_over)
    log_dir = _log_dir(args.log_root, cfg["experiment_name"], cfg["run_name"])
    with _release_if_unused(log_dir):
        params = copy.deepcopy(cfg)  # as given: rsl-rl 5.4 pops keys (class_name) of the config it is built from
        torch.manual_seed(cfg["seed"])
        try:
            runner = OnPolicyRunner(env, cfg, log_dir, args.device)
        except (ValueError, TypeError) as e:
            raise SystemExit(f"dagmix: {e}") from e
        _write_params(log_dir, params, env_over, args.task)  # the run folder appears only once the run can start
        t0 = time.time()
        runner.learn(cfg["max_iterations"])
        print(f"[dagmix] teacher trained in {time.time() - t0:.0f} s; checkpoints in {log_dir}")
        if args.eval_episodes > 0:
            eval_env = _make_env(args.task, args.eval_episodes, args.device, cfg["seed"] + 10_000, env_over)
            res = evaluate_policy(eval_env, runner.get_inference_policy(args.device), args.eval_episodes)
            print(_format_table({"teacher": res}))
        return 0


def cfg_num_envs(args: argparse.Namespace) -> int:
    """Return --num_envs, validated."""
    if args.num_envs < 1:
        raise SystemExit(f"dagmix: --num_envs={args.num_envs} must be >= 1")
    return args.num_envs


def _apply_common(args: argparse.Namespace, cfg: dict, env_over: dict) -> None:
    _cli_checks.check_device(args.device)
    _cli_checks.check_writable_dir(args.log_root, "--log_root")
    _cli_checks.check_eval_flags(args)
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
    _cli_checks.check_train_cfg(cfg)


def cmd_distill(args: argparse.Namespace) -> int:
    """Distill the teacher into the student with MixingDistillation; evaluate the student alone as it trains."""
    if args.algorithm == "dagger_ppo":  # MixingDAggerPPO under rsl_rl's OnPolicyRunner
        from dagmix.cli_dagger_ppo import cmd_distill_dagger_ppo

        return cmd_distill_dagger_ppo(args)
    if args.init_student is not None:
        raise SystemExit("dagmix: --init_student initialises the actor of --algorithm dagger_ppo; add that flag.")
    from dagmix.algorithms import MixingDistillationRunner
    from dagmix.envs.evaluation import evaluate_policy

    cfg, env_over = distill_train_cfg(args.task), {}
    if args.schedule is not None:
        cfg["algorithm"]["mixing"] = {"schedule": args.schedule}
        if args.phase1_iterations is not None:
            cfg["algorithm"]["mixing"]["phase1_iterations"] = args.phase1_iterations
    elif args.phase1_iterations is not None:
        cfg["algorithm"]["mixing"]["phase1_iterations"] = args.phase1_iterations
    _apply_common(args, cfg, env_over)
    mixing_given = args.schedule is not None or args.phase1_iterations is not None
    mixing_given |= any(o.startswith("algorithm.mixing.") for o in args.overrides)
    if cfg["algorithm"].get("use_two_stage_training") is True and not mixing_given:
        del cfg["algorithm"]["mixing"]  # the two-stage patch's keys replace the default mixing schedule
    env = _make_env(args.task, cfg_num_envs(args), args.device, cfg["seed"], env_over)
    checkpoint, loaded = _distill_checkpoint(args, cfg)
    log_dir = _log_dir(args.log_root, cfg["experiment_name"], cfg["run_name"])
    with _release_if_unused(log_dir):
        params = copy.deepcopy(cfg)  # as given: rsl-rl 5.4 pops keys (class_name) of the config it is built from
        torch.manual_seed(cfg["seed"])
        try:
            if args.runner == "stock":  # rsl_rl's own runner, as Isaac Lab's `isaaclab train` uses it
                from rsl_rl.runners import DistillationRunner

                runner = DistillationRunner(env, cfg, log_dir, args.device)
            else:
                runner = MixingDistillationRunner(env, cfg, log_dir, args.device)
        except ValueError as e:
            raise SystemExit(f"dagmix: {e}") from e
        print(f"[dagmix] loading {'run' if args.resume else 'teacher'} checkpoint {checkpoint}")
        # the runner's load, on a dict read with weights_only=True (the stock runner would unpickle fully)
        if runner.alg.load(loaded, None, True):
            runner.current_learning_iteration = loaded["iter"]
        _write_params(log_dir, params, env_over, args.task)  # the run folder appears only once the run can start
        print(f"[dagmix] mixing: {runner.alg.schedule.describe()}, granularity={runner.alg.mixing_cfg.granularity}")

        eval_env = None
        if args.eval_episodes > 0 and args.eval_interval > 0:
            eval_env = _make_env(args.task, args.eval_episodes, args.device, cfg["seed"] + 10_000, env_over)
            best = {"return": -float("inf")}
            last_it = runner.current_learning_iteration + cfg["max_iterations"] - 1
            evaluate = periodic_eval(
                runner.alg, eval_env, args.eval_episodes, args.eval_interval, last_it, log_dir, best
            )
            runner.alg.iteration_callbacks.append(evaluate)
        t0 = time.time()
        try:
            runner.learn(cfg["max_iterations"])
        except NonFiniteError as e:  # a bad teacher or env: one line, no traceback; nothing non-finite was saved
            raise SystemExit(f"dagmix: {e}") from None
        print(f"[dagmix] distillation took {time.time() - t0:.0f} s; checkpoints in {log_dir}")
        if args.final_eval_episodes > 0:
            final_env = _make_env(args.task, args.final_eval_episodes, args.device, cfg["seed"] + 20_000, env_over)
            n = args.final_eval_episodes
            rows = {"student": evaluate_policy(final_env, runner.alg.get_policy(), n)}
            best_path = os.path.join(log_dir, "model_best.pt")
            if os.path.isfile(best_path):
                best_it = _load_file(best_path, "cpu", False)["iter"]
                best = _load_models(args.task, best_path, args.device, final_env, False)[0]["student"]
                rows[f"best@{best_it}"] = evaluate_policy(final_env, best, n)
            rows["teacher"] = evaluate_policy(final_env, runner.alg.teacher, n)
            print(
                "[dagmix] final evaluation on fresh episodes: the last student, the best by periodic eval, the teacher"
            )
            print(_format_table(rows))
            for name, res in rows.items():
                if name != "teacher":
                    print(f"[dagmix] {name} / teacher return: {res.return_mean / rows['teacher'].return_mean:.3f}")
        return 0


def _distill_checkpoint(args: argparse.Namespace, cfg: dict) -> tuple[str, dict[str, Any]]:
    """Return the path and contents of the run to resume (``--resume``) or of the teacher (PPO) checkpoint."""
    if args.resume:
        path, loaded = find_checkpoint(
            args.log_root, cfg["experiment_name"], args.load_run, args.load_checkpoint, args.device, args.unsafe_load
        )
        if "student_state_dict" not in loaded:
            raise SystemExit(
                f"dagmix: --resume found {path}, which is not a distillation checkpoint (no student_state_dict; a "
                "PPO checkpoint?). Pass the teacher with --checkpoint instead, or pick the run with --load_run."
            )
        return path, loaded
    try:
        path = args.checkpoint or shipped_teacher(args.task)
    except ValueError as e:
        raise SystemExit(f"dagmix: {e}") from None
    loaded = _load_file(path, args.device, args.unsafe_load)
    if "student_state_dict" in loaded:
        raise SystemExit(
            f"dagmix: --checkpoint {path} is a distillation checkpoint, not a teacher (PPO) checkpoint. To continue "
            "that run use --resume (with --load_run to pick it); to distill, pass the teacher's PPO checkpoint."
        )
    if "actor_state_dict" not in loaded:
        raise SystemExit(f"dagmix: --checkpoint {path} is not an rsl_rl PPO checkpoint (no actor_state_dict).")
    return path, loaded


# ---------------------------------------------------------------------------------------------------- parser
def _add_run_flags(p: argparse.ArgumentParser, num_envs: int) -> None:
    p.add_argument("--task", default="quadcopter", help="built-in task (see dagmix.envs.list_tasks())")
    p.add_argument("--num_envs", type=int, default=num_envs, help="parallel envs")
    p.add_argument("--max_iterations", type=int, default=None, help="learning iterations (default: task config)")
    p.add_argument("--seed", type=int, default=0, help="seed of torch, the env and the mask generator")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--logger", choices=["tensorboard", "wandb"], default="tensorboard", help="log writer")
    p.add_argument("--log_project_name", default=None, help="W&B project (default: the experiment name)")
    p.add_argument("--experiment_name", default=None, help="logs go to <log_root>/rsl_rl/<experiment_name>/")
    p.add_argument("--run_name", default="", help="suffix of the run folder <timestamp>_<run_name>")
    p.add_argument("--log_root", default="logs", help="root folder of the logs")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field, e.g. env.X=1")


def _add_unsafe_load(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unsafe_load",
        action="store_true",
        help="load checkpoints with full unpickling (weights_only=False), which can run code stored in the file: "
        "only for files from a trusted source",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the ``dagmix`` argument parser."""
    parser = argparse.ArgumentParser(prog="dagmix", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-teacher", allow_abbrev=False, help="train the privileged teacher with PPO")
    _add_run_flags(p, 4096)
    p.add_argument("--eval_episodes", type=int, default=1000, help="episodes of the final teacher evaluation")
    p.set_defaults(fn=cmd_train_teacher)

    p = sub.add_parser(
        "distill", allow_abbrev=False, help="distill the teacher into the student with a mixing schedule"
    )
    _add_run_flags(p, 4096)
    p.add_argument("--checkpoint", default=None, help="teacher (PPO) checkpoint; default: the shipped teacher")
    p.add_argument("--schedule", default=None, help=SCHEDULE_HELP + " (default: two_stage)")
    p.add_argument("--phase1_iterations", type=int, default=None, help="iterations the teacher drives (two_stage)")
    p.add_argument("--eval_interval", type=int, default=25, help="evaluate the student alone every N iterations")
    p.add_argument("--eval_episodes", type=int, default=256, help="episodes per periodic student evaluation")
    p.add_argument("--final_eval_episodes", type=int, default=1000, help="episodes of the final eval table")
    p.add_argument(
        "--runner",
        choices=["mixing", "stock"],
        default="mixing",
        help="MixingDistillationRunner, or rsl_rl's stock DistillationRunner (as `isaaclab train` runs it)",
    )
    p.add_argument(
        "--algorithm",
        choices=["distillation", "dagger_ppo"],
        default="distillation",
        help="MixingDistillation, or MixingDAggerPPO (PPO on the student plus a scheduled imitation loss)",
    )
    p.add_argument(
        "--init_student", default=None, help="dagger_ppo: distillation checkpoint that initialises the actor"
    )
    p.add_argument("--resume", action="store_true", help="continue a distillation run (see --load_run)")
    p.add_argument("--load_run", default=".*", help="regex of the run folder to resume (newest match)")
    p.add_argument("--load_checkpoint", default=r"model_.*\.pt", help="regex of the checkpoint (newest match)")
    _add_unsafe_load(p)
    p.set_defaults(fn=cmd_distill)

    p = sub.add_parser("eval", allow_abbrev=False, help="evaluate the student alone and the teacher alone (95%% CIs)")
    p.add_argument("--task", default="quadcopter", help="built-in task")
    p.add_argument("--checkpoint", required=True, help="distillation or PPO checkpoint")
    p.add_argument("--num_episodes", type=int, default=1000, help="episodes per policy")
    p.add_argument("--seed", type=int, default=0, help="env seed")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--json", default=None, help="also write the table as JSON to this path")
    p.add_argument("overrides", nargs="*", metavar="env.key=value", help="env config overrides")
    _add_unsafe_load(p)
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("export", allow_abbrev=False, help="export the student as ONNX and TorchScript")
    p.add_argument("--task", default="quadcopter", help="built-in task")
    p.add_argument("--checkpoint", required=True, help="distillation checkpoint")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint dir>/exported)")
    p.add_argument("overrides", nargs="*", metavar="env.key=value", help="env config overrides (as in training)")
    _add_unsafe_load(p)
    p.set_defaults(fn=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dagmix`` command."""
    parser = build_parser()
    # key=value overrides may stand anywhere among the flags: collect the ones argparse leaves over
    args, extra = parser.parse_known_args(argv)
    flags = [t for t in extra if t.startswith("-")]
    if flags or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(flags or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
