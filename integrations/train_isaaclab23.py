"""Isaac Lab 2.3 (rsl-rl-lib 3.0.1) train script for dagmix distillation: Isaac Lab's own flags, dagmix's runner.

Isaac Lab 2.3's ``scripts/reinforcement_learning/rsl_rl/train.py`` builds rsl_rl's ``DistillationRunner`` (whose
3.0.1 ``eval`` cannot resolve ``"dagmix.algorithms:MixingDistillation"``) and loads the teacher checkpoint only
when ``algorithm.class_name == "Distillation"``. This script is that file with two changes: the runner is
``MixingDistillationRunner`` (any ``DistillationRunner`` task), and the checkpoint is loaded for any distillation
algorithm, or from ``--teacher_checkpoint PATH`` (a file) when given. Run it with Isaac Lab's python::

    ./isaaclab.sh -p -m dagmix.integrations.train_isaaclab23 --task Isaac-Velocity-Flat-Anymal-D-Distillation-v0 \
        --num_envs 4096 --headless --load_run 2025-01-01_00-00-00 --checkpoint model_1499.pt

Every flag of Isaac Lab 2.3's train.py is accepted with the same meaning (``--video``, ``--video_length``,
``--video_interval``, ``--num_envs``, ``--task``, ``--agent``, ``--seed``, ``--max_iterations``, ``--distributed``,
``--export_io_descriptors``, ``--experiment_name``, ``--run_name``, ``--resume``, ``--load_run``, ``--checkpoint``,
``--logger``, ``--log_project_name``, the AppLauncher flags and Hydra ``key=value`` overrides).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from typing import Any

DISTILLATION_CLASS_NAMES = ("Distillation", "MixingDistillation", "dagmix.algorithms:MixingDistillation")
"""Algorithm class names whose runs start by loading a (teacher) checkpoint, as Isaac Lab does for Distillation."""


def build_parser(add_app_launcher_args: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Return Isaac Lab 2.3's train.py parser (its flags and cli_args' rsl_rl group) plus ``--teacher_checkpoint``."""
    parser = argparse.ArgumentParser(description="Distill an RL agent with dagmix and RSL-RL (Isaac Lab 2.3).")
    parser.add_argument("--video", action="store_true", default=False, help="Record videos during training.")
    parser.add_argument("--video_length", type=int, default=200, help="Length of the recorded video (in steps).")
    parser.add_argument("--video_interval", type=int, default=2000, help="Interval between video recordings (steps).")
    parser.add_argument("--num_envs", type=int, default=None, help="Number of environments to simulate.")
    parser.add_argument("--task", type=str, default=None, help="Name of the task.")
    parser.add_argument("--agent", type=str, default="rsl_rl_cfg_entry_point", help="RL agent config entry point.")
    parser.add_argument("--seed", type=int, default=None, help="Seed used for the environment")
    parser.add_argument("--max_iterations", type=int, default=None, help="RL Policy training iterations.")
    parser.add_argument("--distributed", action="store_true", default=False, help="Run with multiple GPUs or nodes.")
    parser.add_argument("--export_io_descriptors", action="store_true", default=False, help="Export IO descriptors.")
    parser.add_argument(
        "--teacher_checkpoint", type=str, default=None, help="dagmix: the teacher's PPO checkpoint file (a path)."
    )
    group = parser.add_argument_group("rsl_rl", description="Arguments for RSL-RL agent.")
    group.add_argument("--experiment_name", type=str, default=None, help="Experiment folder where logs are stored.")
    group.add_argument("--run_name", type=str, default=None, help="Run name suffix to the log directory.")
    group.add_argument("--resume", action="store_true", default=False, help="Whether to resume from a checkpoint.")
    group.add_argument("--load_run", type=str, default=None, help="Name of the run folder to resume from.")
    group.add_argument("--checkpoint", type=str, default=None, help="Checkpoint file to resume from.")
    group.add_argument(
        "--logger", type=str, default=None, choices={"wandb", "tensorboard", "neptune"}, help="Logger module to use."
    )
    group.add_argument("--log_project_name", type=str, default=None, help="wandb / neptune project name.")
    add_app_launcher_args(parser)
    return parser


def update_agent_cfg(agent_cfg: Any, args_cli: argparse.Namespace) -> Any:
    """Apply the rsl_rl flags to the agent config exactly as Isaac Lab 2.3's ``cli_args.update_rsl_rl_cfg``."""
    if args_cli.seed is not None:
        if args_cli.seed == -1:
            args_cli.seed = random.randint(0, 10000)
        agent_cfg.seed = args_cli.seed
    if args_cli.resume is not None:
        agent_cfg.resume = args_cli.resume
    if args_cli.load_run is not None:
        agent_cfg.load_run = args_cli.load_run
    if args_cli.checkpoint is not None:
        agent_cfg.load_checkpoint = args_cli.checkpoint
    if args_cli.experiment_name is not None:
        agent_cfg.experiment_name = args_cli.experiment_name
    if args_cli.run_name is not None:
        agent_cfg.run_name = args_cli.run_name
    if args_cli.logger is not None:
        agent_cfg.logger = args_cli.logger
    if agent_cfg.logger in {"wandb", "neptune"} and args_cli.log_project_name:
        agent_cfg.wandb_project = args_cli.log_project_name
        agent_cfg.neptune_project = args_cli.log_project_name
    return agent_cfg


def main() -> None:  # pragma: no cover - needs Isaac Sim
    """Launch the simulator, build the task and MixingDistillationRunner, load the teacher, learn."""
    from isaaclab.app import AppLauncher

    args_cli, hydra_args = build_parser(AppLauncher.add_app_launcher_args).parse_known_args()
    if args_cli.video:
        args_cli.enable_cameras = True
    sys.argv = [sys.argv[0]] + hydra_args
    app_launcher = AppLauncher(args_cli)
    simulation_app = app_launcher.app

    import os
    from datetime import datetime

    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401
    import torch
    from isaaclab.envs import ManagerBasedRLEnvCfg
    from isaaclab.utils.dict import print_dict
    from isaaclab.utils.io import dump_pickle, dump_yaml
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper
    from isaaclab_tasks.utils import get_checkpoint_path
    from isaaclab_tasks.utils.hydra import hydra_task_config

    from dagmix.algorithms import MixingDistillationRunner

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = False

    @hydra_task_config(args_cli.task, args_cli.agent)
    def train(env_cfg: Any, agent_cfg: Any) -> None:
        agent_cfg = update_agent_cfg(agent_cfg, args_cli)
        env_cfg.scene.num_envs = args_cli.num_envs if args_cli.num_envs is not None else env_cfg.scene.num_envs
        if args_cli.max_iterations is not None:
            agent_cfg.max_iterations = args_cli.max_iterations
        env_cfg.seed = agent_cfg.seed
        env_cfg.sim.device = args_cli.device if args_cli.device is not None else env_cfg.sim.device
        if args_cli.distributed:
            env_cfg.sim.device = f"cuda:{app_launcher.local_rank}"
            agent_cfg.device = f"cuda:{app_launcher.local_rank}"
            env_cfg.seed = agent_cfg.seed = agent_cfg.seed + app_launcher.local_rank
        if agent_cfg.class_name != "DistillationRunner":
            raise ValueError(f"This script distills; the task's runner is {agent_cfg.class_name!r}.")

        log_root_path = os.path.abspath(os.path.join("logs", "rsl_rl", agent_cfg.experiment_name))
        print(f"[INFO] Logging experiment in directory: {log_root_path}")
        log_dir = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        print(f"Exact experiment name requested from command line: {log_dir}")
        if agent_cfg.run_name:
            log_dir += f"_{agent_cfg.run_name}"
        log_dir = os.path.join(log_root_path, log_dir)
        if isinstance(env_cfg, ManagerBasedRLEnvCfg):
            env_cfg.export_io_descriptors = args_cli.export_io_descriptors
        env_cfg.log_dir = log_dir

        env = gym.make(args_cli.task, cfg=env_cfg, render_mode="rgb_array" if args_cli.video else None)
        resume_path = None
        if agent_cfg.resume or (
            args_cli.teacher_checkpoint is None and agent_cfg.algorithm.class_name in DISTILLATION_CLASS_NAMES
        ):
            resume_path = get_checkpoint_path(log_root_path, agent_cfg.load_run, agent_cfg.load_checkpoint)
        if args_cli.video:
            video_kwargs = {
                "video_folder": os.path.join(log_dir, "videos", "train"),
                "step_trigger": lambda step: step % args_cli.video_interval == 0,
                "video_length": args_cli.video_length,
                "disable_logger": True,
            }
            print("[INFO] Recording videos during training.")
            print_dict(video_kwargs, nesting=4)
            env = gym.wrappers.RecordVideo(env, **video_kwargs)
        env = RslRlVecEnvWrapper(env, clip_actions=agent_cfg.clip_actions)

        runner = MixingDistillationRunner(env, agent_cfg.to_dict(), log_dir=log_dir, device=agent_cfg.device)
        runner.add_git_repo_to_log(__file__)
        if args_cli.teacher_checkpoint is not None:
            print(f"[INFO]: Loading teacher checkpoint from: {args_cli.teacher_checkpoint}")
            runner.load(args_cli.teacher_checkpoint)
        if resume_path is not None:
            print(f"[INFO]: Loading model checkpoint from: {resume_path}")
            runner.load(resume_path)

        dump_yaml(os.path.join(log_dir, "params", "env.yaml"), env_cfg)
        dump_yaml(os.path.join(log_dir, "params", "agent.yaml"), agent_cfg)
        dump_pickle(os.path.join(log_dir, "params", "env.pkl"), env_cfg)
        dump_pickle(os.path.join(log_dir, "params", "agent.pkl"), agent_cfg)
        runner.learn(num_learning_iterations=agent_cfg.max_iterations, init_at_random_ep_len=True)
        env.close()

    train()
    simulation_app.close()


if __name__ == "__main__":  # pragma: no cover
    main()
