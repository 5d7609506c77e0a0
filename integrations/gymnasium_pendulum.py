"""Example: distill a scripted Pendulum-v1 controller into a student that does not observe the angular velocity.

    python -m dagmix.integrations.gymnasium_pendulum            # the defaults: --num-envs 64 --max-iterations 150
                                                                # --schedule two_stage --phase1-iterations 30

The teacher is a plain function of the full observation (cos, sin, angular velocity): energy pumping, then a PD
catch near the top. The student (a GRU) sees (cos, sin) and the torque applied at the previous step, never the
velocity, and must infer the velocity from its memory.

Three things make the student learn (README, "gymnasium and any callable teacher", has the measurements):

- the student sees its last action (as the built-in quadcopter's student does). The teacher's pump torque is
  bang-bang (+-2, the sign of the velocity); with the last torque in view the label is "keep pushing" except at
  the velocity's reversals, and the student can tell the torque's effect on the angle from gravity's;
- the episodes are out of step (``learn(..., init_at_random_ep_len=True)``, which the gymnasium adapter honours).
  Pendulum-v1's episodes all last 200 steps, so envs reset together stay together: one 32-step rollout then
  holds only swing-ups or only balancing, and the student forgets one while it is trained on the other;
- more gradient steps: 8 epochs of 8-step truncated backpropagation per rollout (32 gradient steps per
  iteration; 2 x 16 gave 4, and 600 in a whole run are too few even for a student that sees the velocity).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dagmix.algorithms import MixingDistillationRunner, compat
from dagmix.integrations.callable_teacher import use_callable_teacher
from dagmix.integrations.gymnasium_env import GymnasiumVecEnv
from dagmix.mixing.config import schedule_names, schedule_parameters

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


class LastActionObservation(gym.Wrapper):
    """Appends the torque the env applied at the previous step (clipped to [-2, 2]; 0 after a reset) to the obs.

    Pendulum-v1's observation (cos, sin, angular velocity) becomes (cos, sin, angular velocity, last torque).
    """

    def __init__(self, env: gym.Env) -> None:
        """Wrap ``env`` (Pendulum-v1)."""
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = gym.spaces.Box(
            np.append(low, -MAX_TORQUE).astype(np.float32), np.append(high, MAX_TORQUE).astype(np.float32)
        )
        self._last = 0.0

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        """Reset the env; the last torque is 0."""
        obs, info = self.env.reset(**kwargs)
        self._last = 0.0
        return np.append(obs, self._last).astype(np.float32), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Step the env and append the torque it applied."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._last = float(np.clip(np.asarray(action).reshape(-1)[0], -MAX_TORQUE, MAX_TORQUE))
        return np.append(obs, self._last).astype(np.float32), reward, terminated, truncated, info


def teacher_obs(obs: torch.Tensor) -> torch.Tensor:
    """Return the teacher's group: Pendulum-v1's own observation (cos, sin, angular velocity)."""
    return obs[:, :3]


def student_obs(obs: torch.Tensor) -> torch.Tensor:
    """Return the student's group: every column but the angular velocity ((cos, sin) and the last torque if any)."""
    return torch.cat([obs[:, :2], obs[:, 3:]], dim=-1)


def make_env(num_envs: int, seed: int = 0, last_action: bool = True) -> GymnasiumVecEnv:
    """Pendulum-v1 x ``num_envs`` as an rsl_rl VecEnv.

    Args:
        num_envs: Parallel envs (a gymnasium ``SyncVectorEnv``).
        seed: Seed of the first reset.
        last_action: Wrap each env in :class:`LastActionObservation`, so that the student's ``policy`` group is
            (cos, sin, last torque); False: (cos, sin). The ``teacher`` group is (cos, sin, angular velocity).
    """

    def factory() -> gym.Env:
        env = gym.make("Pendulum-v1")
        return LastActionObservation(env) if last_action else env

    return GymnasiumVecEnv([factory] * num_envs, policy_obs=student_obs, teacher_obs=teacher_obs, seed=seed)


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
    last_action: bool = True
    """The student also sees the torque applied at the previous step (see :func:`make_env`)."""
    init_at_random_ep_len: bool = True
    """Start the envs at random points of their first episode, so that later episodes are out of step."""


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
            "num_learning_epochs": 8,
            "gradient_length": min(8, args.num_steps_per_env),
            "learning_rate": 3e-3,
            "max_grad_norm": 1.0,
            "teacher_action_clip": MAX_TORQUE,
            "mixing": dict(args.schedule),
        },
    }
    teacher = {"class_name": "dagmix.integrations.callable_teacher:CallableTeacher"}  # 4.x/5.x; 3.x: replaced
    cfg.update(
        compat.distillation_model_cfg([64, 64], init_std=0.3, rnn_type="gru", rnn_hidden_dim=32, teacher=teacher)
    )
    return cfg


def run(args: Args) -> MixingDistillationRunner:
    """Build the env and runner, install the scripted teacher and distill; return the runner."""
    torch.manual_seed(args.seed)
    env = make_env(args.num_envs, args.seed, args.last_action)
    runner = MixingDistillationRunner(env, train_cfg(args), args.log_dir, "cpu")
    use_callable_teacher(runner, pendulum_expert)
    runner.learn(args.max_iterations, init_at_random_ep_len=args.init_at_random_ep_len)
    return runner


def evaluate(runner: MixingDistillationRunner, num_envs: int = 100, seed: int = 1000) -> dict[str, float]:
    """Return the mean episode return of the student alone and of the teacher alone on fresh episodes.

    The envs give the student the observation it was trained on (with the last torque if its training env did).
    """
    policy = runner.get_inference_policy()
    last_action = runner.env.get_observations()["policy"].shape[-1] == 3  # (cos, sin, last torque)
    out = {}
    for who in ("student", "teacher"):
        env = make_env(num_envs, seed, last_action)
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


def random_return(num_envs: int = 100, seed: int = 1000) -> float:
    """Return the mean episode return of uniformly random torques in [-2, 2] on :func:`evaluate`'s episodes."""
    env = make_env(num_envs, seed, last_action=False)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(num_envs)
    for _ in range(env.max_episode_length):
        _, rewards, _, _ = env.step((torch.rand(num_envs, 1, generator=generator) * 2.0 - 1.0) * MAX_TORQUE)
        total += rewards
    env.close()
    return float(total.mean())


def normalized_return(student: float, teacher: float, random: float) -> float:
    """Return (student - random) / (teacher - random): 0 for a random policy, 1 for the teacher."""
    return (student - random) / (teacher - random)


def _taking(parameter: str) -> str:
    """Return the schedules (kinds and presets) that take ``parameter``, comma-separated."""
    return ", ".join(n for n in schedule_names() if parameter in schedule_parameters(n))


def main(argv: list[str] | None = None) -> None:
    """Parse the flags and run the example."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--num-envs", type=int, default=Args.num_envs)
    p.add_argument("--max-iterations", type=int, default=Args.max_iterations)
    p.add_argument("--schedule", default="two_stage", help="a schedule kind or preset, e.g. two_stage, dagger_linear")
    p.add_argument(
        "--phase1-iterations",
        type=int,
        default=30,
        help=f"teacher-driven iterations (schedules that take them: {_taking('phase1_iterations')})",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=60,
        help=f"iterations of the ramp (schedules that take them: {_taking('iterations')})",
    )
    p.add_argument("--log-dir", default=Args.log_dir)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-last-action", action="store_true", help="the student sees (cos, sin) only, not its last torque"
    )
    p.add_argument(
        "--synchronous-episodes", action="store_true", help="start every env at step 0 (init_at_random_ep_len off)"
    )
    a = p.parse_args(argv)
    try:
        takes = schedule_parameters(a.schedule, what="--schedule")
    except ValueError as e:
        p.error(str(e))
    flags = {"phase1_iterations": a.phase1_iterations, "iterations": a.iterations}
    schedule = {"schedule": a.schedule, **{k: v for k, v in flags.items() if k in takes}}
    args = Args(
        a.num_envs,
        a.max_iterations,
        schedule=schedule,
        log_dir=a.log_dir,
        seed=a.seed,
        last_action=not a.no_last_action,
        init_at_random_ep_len=not a.synchronous_episodes,
    )
    runner = run(args)
    returns = evaluate(runner)
    student, teacher, random = returns["student"], returns["teacher"], random_return()
    print(
        f"mean return over 100 fresh episodes: student {student:.1f}, teacher {teacher:.1f}, random {random:.1f}; "
        f"normalised (student - random) / (teacher - random): {normalized_return(student, teacher, random):.3f}"
    )


if __name__ == "__main__":
    main()
