"""The ``dagmix`` command: train-teacher, distill, eval and export on the built-in tasks."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dagmix.cli.distill import cmd_distill
from dagmix.cli.models import cmd_eval, cmd_export
from dagmix.cli.teacher import cmd_train_teacher

SCHEDULE_HELP = "mixing schedule: a kind or preset (see docs/schedules.md), e.g. two_stage, student_only, dagger_exp"


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
    p.add_argument(
        "--init_at_random_ep_len",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start the training envs at random points of their first episode, as `isaaclab train` and mjlab's "
        "train do (rsl_rl's learn(init_at_random_ep_len=True)); default: on for dagger_ppo, off for distillation",
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
