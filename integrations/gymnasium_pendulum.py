"""Example: distill a scripted Pendulum-v1 controller into a student that does not observe the angular velocity.

    python -m dagmix.integrations.gymnasium_pendulum --num-envs 64 --max-iterations 150 --schedule two_stage \
        --phase1-iterations 30 --log-dir logs/pendulum

The teacher is a plain function of the full observation (cos, sin, angular velocity): energy pumping, then a PD
catch near the top. The student (a GRU) sees only (cos, sin) and must infer the velocity from its memory.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from dagmix.algorithms import MixingDistillationRunner, _compat
from dagmix.integrations.callable_teacher import use_callable_teacher
from dagmix.integrations.gymnasium_env import GymnasiumVecEnv

G, MAX_TORQUE = 10.0, 2.0  # Pendulum-v1: theta_dd = 3 g / 2 sin(theta) + 3 u (m = l = 1), theta = 0 upright


def pendulum_expert(obs: torch.Tensor) -> torch.Tensor:
    """Scripted swing-up: obs (num_envs, 3) = (cos, sin, theta_dot) -> torque (num_envs, 1) in [-2, 2]."""
    cos, sin, vel = obs[:, 0], obs[:, 1], obs[:, 2]
    theta = torch.atan2(sin, cos)
    energy = 0.5 * vel**2 + 1.5 * G * (cos - 1.0)  # 0 at rest upright
    pump = (-energy * vel).clamp(-1.0, 1.0) * MAX_TORQUE
    catch = -(10.0 * theta + 2.0 * vel)
    near_top = (cos > math.cos(0.6)) & (vel.abs() < 4.0)
    return torch.where(near_top, catch, pump).clamp(-MAX_TORQUE, MAX_TORQUE).unsqueeze(-1)


def student_obs(obs: torch.Tensor) -> torch.Tensor:
    """Return the student's group: (cos, sin) only, no angular velocity."""
    return obs[:, :2]


def make_env(num_envs: int, seed: int = 0) -> GymnasiumVecEnv:
    """Pendulum-v1 x ``num_envs`` as an rsl_rl VecEnv: ``teacher`` = the full obs, ``policy`` = (cos, sin)."""
    return GymnasiumVecEnv([lambda: gym.make("Pendulum-v1")] * num_envs, policy_obs=student_obs, seed=seed)


@dataclass
class Args:
    """Command-line arguments of the example."""

    num_envs: int = 64
    """Parallel Pendulum envs."""
    max_iterations: int = 150
    """Distillation iterations."""
    num_steps_per_env: int = 32
    """Rollout length per iteration."""
    schedule: dict[str, Any] = field(default_factory=lambda: {"schedule": "two_stage", "phase1_iterations": 30})
    """The ``mixing`` config."""
    log_dir: str | None = "logs/pendulum_distillation"
    """Where rsl_rl writes checkpoints and scalars (required on rsl-rl 3.x)."""
    seed: int = 0
    """Seed of the envs, networks and the mask generator."""


def train_cfg(args: Args) -> dict[str, Any]:
    """Return the distillation train config for the installed rsl-rl-lib (3.x, 4.x or 5.x model format)."""
    cfg: dict[str, Any] = {
        "num_steps_per_env": args.num_steps_per_env,
        "max_iterations": args.max_iterations,
        "save_interval": 50,
        "seed": args.seed,
        "logger": "tensorboard",
        "algorithm": {
            "class_name": "dagmix.algorithms:MixingDistillation",
            "num_learning_epochs": 2,
            "gradient_length": min(16, args.num_steps_per_env),
            "learning_rate": 3e-3,
            "max_grad_norm": 1.0,
            "teacher_action_clip": MAX_TORQUE,
            "mixing": dict(args.schedule),
        },
    }
    teacher = {"class_name": "dagmix.integrations.callable_teacher:CallableTeacher"}  # 4.x/5.x; 3.x: replaced
    cfg.update(
        _compat.distillation_model_cfg([64, 64], init_std=0.3, rnn_type="gru", rnn_hidden_dim=32, teacher=teacher)
    )
    return cfg


def run(args: Args) -> MixingDistillationRunner:
    """Build the env and runner, install the scripted teacher and distill; return the runner."""
    torch.manual_seed(args.seed)
    env = make_env(args.num_envs, args.seed)
    runner = MixingDistillationRunner(env, train_cfg(args), args.log_dir, "cpu")
    use_callable_teacher(runner, pendulum_expert)
    runner.learn(args.max_iterations)
    return runner


def evaluate(runner: MixingDistillationRunner, num_envs: int = 100, seed: int = 1000) -> dict[str, float]:
    """Return the mean episode return of the student alone and of the teacher alone on fresh episodes."""
    policy = runner.get_inference_policy()
    out = {}
    for who in ("student", "teacher"):
        env = make_env(num_envs, seed)
        runner.alg.get_policy().reset()  # a fresh hidden state for every env
        obs, total = env.get_observations(), torch.zeros(num_envs)
        with torch.inference_mode():
            for _ in range(env.max_episode_length):  # Pendulum-v1 episodes all end by time-out at 200 steps
                action = policy(obs) if who == "student" else pendulum_expert(obs["teacher"])
                obs, rewards, _, _ = env.step(action)
                total += rewards
        out[who] = float(total.mean())
        env.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse the flags and run the example."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--num-envs", type=int, default=Args.num_envs)
    p.add_argument("--max-iterations", type=int, default=Args.max_iterations)
    p.add_argument("--schedule", default="two_stage", help="a schedule kind or preset, e.g. two_stage, dagger_linear")
    p.add_argument("--phase1-iterations", type=int, default=30, help="two_stage: teacher-driven iterations")
    p.add_argument("--iterations", type=int, default=60, help="linear / dagger_linear: iterations of the ramp")
    p.add_argument("--log-dir", default=Args.log_dir)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.schedule in ("two_stage", "step"):
        schedule = {"schedule": a.schedule, "phase1_iterations": a.phase1_iterations}
    elif a.schedule in ("linear", "dagger_linear", "cosine"):
        schedule = {"schedule": a.schedule, "iterations": a.iterations}
    else:
        schedule = {"schedule": a.schedule}
    runner = run(Args(a.num_envs, a.max_iterations, schedule=schedule, log_dir=a.log_dir, seed=a.seed))
    returns = evaluate(runner)
    print(f"mean return over 100 fresh episodes: student {returns['student']:.1f}, teacher {returns['teacher']:.1f}")


if __name__ == "__main__":
    main()
