"""The ``dagmix`` command. ``dagmix demo``: train a toy teacher with PPO, then distill it in two stages."""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from collections.abc import Sequence

import torch


def _models(hidden: list[int], rnn: bool) -> tuple[dict, dict]:
    teacher = {
        "class_name": "MLPModel",
        "hidden_dims": hidden,
        "activation": "elu",
        "obs_normalization": True,
        "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 0.5},
    }
    student = copy.deepcopy(teacher)
    student["distribution_cfg"]["init_std"] = 0.1
    if rnn:
        student.update(class_name="RNNModel", rnn_type="gru", rnn_hidden_dim=32, rnn_num_layers=1)
    return teacher, student


def _evaluate(env: object, policy: torch.nn.Module, steps: int) -> float:
    """Return the mean per-step reward of ``policy`` driving ``env`` alone (deterministic actions)."""
    obs = env.get_observations()
    total = torch.zeros((), device=env.device)
    policy.reset()
    with torch.inference_mode():
        for _ in range(steps):
            obs, rewards, dones, _ = env.step(policy(obs))
            policy.reset(dones)
            total += rewards.mean()
    return float(total) / steps


def demo(args: argparse.Namespace) -> int:
    """Train the toy teacher (PPO), distill it two-stage with MixingDistillationRunner, evaluate both."""
    from rsl_rl.runners import OnPolicyRunner

    from dagmix.algorithms import MixingDistillationRunner
    from dagmix.envs.toy import PointMassEnv

    torch.manual_seed(args.seed)
    log_root = args.log_dir or tempfile.mkdtemp(prefix="dagmix-demo-")
    teacher_cfg, student_cfg = _models([64, 64], rnn=True)
    env = PointMassEnv(num_envs=args.num_envs, seed=args.seed)
    ppo_cfg = {
        "num_steps_per_env": 24,
        "save_interval": 10_000,
        "seed": args.seed,
        "obs_groups": {"actor": ["teacher"], "critic": ["teacher"]},
        "algorithm": {"class_name": "PPO", "learning_rate": 1e-3, "num_learning_epochs": 5, "num_mini_batches": 4},
        "actor": copy.deepcopy(teacher_cfg),
        "critic": copy.deepcopy({k: v for k, v in teacher_cfg.items() if k != "distribution_cfg"}),
        "logger": "tensorboard",
    }
    print(f"[dagmix demo] 1/3 training the teacher with PPO for {args.teacher_iterations} iterations")
    t0 = time.time()
    ppo = OnPolicyRunner(env, ppo_cfg, os.path.join(log_root, "teacher"), "cpu")
    ppo.learn(args.teacher_iterations)
    teacher_path = os.path.join(log_root, "teacher", f"model_{ppo.current_learning_iteration}.pt")
    print(f"[dagmix demo] teacher saved to {teacher_path} ({time.time() - t0:.0f} s)")

    print(
        f"[dagmix demo] 2/3 two-stage distillation: {args.iterations} iterations, "
        f"teacher drives the first {args.phase1_iterations}"
    )
    env = PointMassEnv(num_envs=args.num_envs, seed=args.seed + 1)
    train_cfg = {
        "num_steps_per_env": 24,
        "max_iterations": args.iterations,
        "save_interval": 10_000,
        "seed": args.seed,
        "obs_groups": {"student": ["policy"], "teacher": ["teacher"]},
        "algorithm": {
            "class_name": "dagmix.algorithms:MixingDistillation",
            "num_learning_epochs": 2,
            "gradient_length": 24,
            "learning_rate": 1e-3,
            "max_grad_norm": 1.0,
            "use_two_stage_training": True,
            "phase1_iterations": args.phase1_iterations,
        },
        "student": copy.deepcopy(student_cfg),
        "teacher": copy.deepcopy(teacher_cfg),
        "logger": "tensorboard",
    }
    runner = MixingDistillationRunner(env, train_cfg, os.path.join(log_root, "distill"), "cpu")
    runner.load(teacher_path)
    runner.learn(args.iterations)

    print("[dagmix demo] 3/3 evaluation, each policy driving alone (mean reward per step, higher is better)")
    eval_env = PointMassEnv(num_envs=args.num_envs, seed=args.seed + 2)
    student_r = _evaluate(eval_env, runner.get_inference_policy(), 200)
    eval_env = PointMassEnv(num_envs=args.num_envs, seed=args.seed + 2)
    teacher = runner.alg.teacher
    teacher_r = _evaluate(eval_env, teacher, 200)
    print(f"[dagmix demo] teacher {teacher_r:.4f}  student {student_r:.4f}  ratio {student_r / teacher_r:.2f}")
    print(f"[dagmix demo] logs and checkpoints: {log_root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dagmix`` command."""
    parser = argparse.ArgumentParser(prog="dagmix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train a toy teacher, then distill it two-stage (a few minutes on CPU)")
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--teacher-iterations", type=int, default=60)
    p.add_argument("--iterations", type=int, default=30, help="distillation iterations")
    p.add_argument("--phase1-iterations", type=int, default=10, help="iterations the teacher drives")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-dir", default=None, help="where logs and checkpoints go (default: a temp dir)")
    args = parser.parse_args(argv)
    for name in ("num_envs", "teacher_iterations", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if args.phase1_iterations < 0:
        parser.error(f"--phase1-iterations={args.phase1_iterations} must be >= 0")
    return demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
