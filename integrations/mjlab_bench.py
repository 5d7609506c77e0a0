"""mjlab Cartpole swing-up for the schedule benchmark: the env, a distillation config and the shipped PPO teacher.

``Mjlab-Cartpole-Swingup-Dagmix`` (registered by :mod:`dagmix.integrations.mjlab_train`) is mjlab's swing-up (the
pole starts hanging down; 1000-step episodes of 50 s that end only by time-out; reward in [0, 1] per step, dm_control's
smooth cartpole reward) with a student that sees the cart position and the pole angle but no velocities::

    from dagmix.algorithms import MixingDistillationRunner
    from dagmix.integrations import mjlab_bench

    env = mjlab_bench.make_env(num_envs=256, seed=0)
    runner = MixingDistillationRunner(env, mjlab_bench.train_cfg(), log_dir=None, device="cpu")
    runner.load(mjlab_bench.teacher_checkpoint())  # the PPO teacher (envs/assets/, see its JSON)
    runner.learn(runner.cfg["max_iterations"], init_at_random_ep_len=True)  # as mjlab's train: out-of-step episodes
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import torch
from mjlab.envs import ManagerBasedRlEnv
from mjlab.rl import RslRlVecEnvWrapper
from mjlab.tasks import registry
from tensordict import TensorDict

from dagmix.algorithms import MixingDistillationRunner
from dagmix.envs.evaluation import t_ci95
from dagmix.envs.task_configs import ASSETS
from dagmix.integrations.mjlab_tasks import drop_unset_model_keys
from dagmix.integrations.mjlab_train import register_builtin_dagger_ppo_variants, register_builtin_variants

TASK_ID = "Mjlab-Cartpole-Swingup-Dagmix"
"""The registered mjlab task (its env config, observation groups and models)."""

DAGGER_PPO_TASK_ID = "Mjlab-Cartpole-Swingup-Dagmix-DAggerPPO"
"""The same env and student trained by MixingDAggerPPO (``register_dagger_ppo_task``'s defaults: the recipe)."""

TEACHER_FILE = "mjlab_cartpole_swingup_teacher.pt"
"""The shipped teacher, in ``dagmix/envs/assets/`` (provenance: the JSON of the same name)."""


class _PrivateRng:
    """A torch RNG stream of the env's own (the CPU generator and, on CUDA, the env device's).

    mjlab draws its reset states from torch's global generators; running every reset and step inside this stream
    makes an env's episodes depend only on its seed and the actions, not on what else used the global RNG (a
    student's action sampling, weight initialization). The caller's global RNG state is left as it was.
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        """Start the stream from ``seed``."""
        self._cuda: list[int] = []
        if device.type == "cuda":
            self._cuda = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=self._cuda):
            torch.default_generator.manual_seed(seed)
            for index in self._cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
            self._save()

    def _save(self) -> None:
        self._cpu_state = torch.get_rng_state()
        self._cuda_states = [torch.cuda.get_rng_state(index) for index in self._cuda]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Run the block on this stream; restore the global generators afterwards."""
        with torch.random.fork_rng(devices=self._cuda):
            torch.set_rng_state(self._cpu_state)
            for index, state in zip(self._cuda, self._cuda_states, strict=True):
                torch.cuda.set_rng_state(state, index)
            yield
            self._save()


class SeededMjlabVecEnv(RslRlVecEnvWrapper):
    """mjlab's rsl_rl wrapper whose resets draw from a seeded RNG stream of their own (see :class:`_PrivateRng`).

    Attributes:
        num_envs: Number of parallel envs.
        device: The env's torch device.
        max_episode_length: Episode length in env steps (1000 for the swing-up: 50 s at 20 Hz).
    """

    def __init__(
        self, task_id: str, num_envs: int, device: str, seed: int, episode_length_s: float | None = None
    ) -> None:
        """Build ``task_id``'s training env with ``num_envs`` envs on ``device`` and reset it (seeded by ``seed``).

        ``episode_length_s`` replaces the task's episode length (s) when given.
        """
        env_cfg = registry.load_env_cfg(task_id)
        env_cfg.scene.num_envs = num_envs
        if episode_length_s is not None:
            env_cfg.episode_length_s = float(episode_length_s)
        env_cfg.seed = None  # mjlab would seed the global generators; the private stream replaces that
        self._rng = _PrivateRng(seed, torch.device(device))
        with self._rng.active():
            super().__init__(ManagerBasedRlEnv(cfg=env_cfg, device=device), registry.load_rl_cfg(task_id).clip_actions)
        self._rng_start = copy.deepcopy(self._rng)  # the stream as the first reset() finds it (for reseed)

    def reset(self) -> tuple[TensorDict, dict]:
        """Reset every env; return the observations and extras."""
        with self._rng.active():
            return super().reset()

    def reseed(self) -> None:
        """Restart the private stream where it stood after construction: the next resets replay the first episodes.

        The same-episode evaluation (:class:`dagmix.envs.evaluation.SameEpisodes`) calls this before each run: every
        policy then starts from the same states; later draws stay the same as long as the envs' resets do (the
        swing-up's episodes all end together, at the time limit).
        """
        self._rng = copy.deepcopy(self._rng_start)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Step every env (done envs are reset in place, on the private stream)."""
        with self._rng.active():
            return super().step(actions)


def make_env(
    num_envs: int, device: str = "cpu", seed: int = 0, episode_length_s: float | None = None
) -> SeededMjlabVecEnv:
    """Return the ``Mjlab-Cartpole-Swingup-Dagmix`` env, wrapped for rsl_rl and reset.

    Observation groups: ``student`` (cart position, cos/sin of the pole angle: shape ``(num_envs, 3)``), ``actor``
    (those plus the cart and pole velocities: what the teacher reads, shape ``(num_envs, 5)``) and ``critic``.
    Episodes last ``env.max_episode_length`` (1000) steps and end only by time-out. Two envs built with the same
    ``seed`` (on the same device) give the same episodes under the same actions.

    Args:
        num_envs: Number of parallel envs.
        device: ``"cpu"`` or a CUDA device (mjlab's Warp simulation runs on either).
        seed: Seed of the env's reset states.
        episode_length_s: Episode length in seconds instead of the task's 50 s (e.g. short episodes in tests).

    Raises:
        ValueError: ``num_envs`` is not a positive integer.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} must be an integer >= 1.")
    if episode_length_s is not None and not episode_length_s > 0:
        raise ValueError(f"episode_length_s={episode_length_s!r} must be > 0.")
    register_builtin_variants()
    return SeededMjlabVecEnv(TASK_ID, num_envs, device, seed, episode_length_s)


def train_cfg() -> dict[str, Any]:
    """Return the rsl_rl train config of ``MixingDistillationRunner`` for the swing-up (a fresh dict per call).

    The student is :data:`dagmix.integrations.mjlab_train.STUDENT` (a GRU on the ``student`` group), the teacher
    mjlab's PPO actor on the ``actor`` group (so :func:`teacher_checkpoint` loads with ``runner.load(path)``).
    Two-stage by default (the teacher drives the first 100 of 300 iterations). Measured once (seed 0, 256 envs, 300
    iterations: 2.5M env steps, 860 s each with two runs at once on a busy 2-core CPU): ``student_only`` reaches the
    teacher's return (48.1 vs 48.2; random actions 8.6), ``dagger_exp`` (decay 0.97) 32.5 (a mix of swung-up and
    failed episodes).
    """
    register_builtin_variants()
    rl = registry.load_rl_cfg(TASK_ID)
    return {
        "experiment_name": "mjlab_cartpole_swingup_distillation",
        "run_name": "",
        "num_steps_per_env": 32,  # as the PPO teacher's runner
        "max_iterations": 300,
        "save_interval": 50,
        "seed": 0,
        "obs_groups": {k: list(v) for k, v in rl.obs_groups.items()},
        "algorithm": {
            "class_name": "dagmix.algorithms:MixingDistillation",
            # 4 passes of 8-step windows: 16 gradient steps per iteration. Measured at 256 envs, 150 iterations,
            # student_only: 1 pass of 16-step windows (2 gradient steps) gave a student return of 11.6, this 20.3
            # (two_stage 1/3: 6.8 and 13.8). Velocities are differences of two positions: a short window is enough.
            "num_learning_epochs": 4,
            "gradient_length": 8,
            "learning_rate": 1e-3,
            "max_grad_norm": 1.0,
            "loss_type": "mse",
            "teacher_action_clip": 1.0,  # the slider motor's control range: a larger label changes nothing
            "mixing": {"schedule": "two_stage", "phase1_iterations": 100, "granularity": "step"},
            "learning_rate_schedule": "cosine",
            "min_learning_rate": 1e-4,
            "warmup_iterations": 0,
            "learning_rate_iterations": None,
            "learning_rate_decay_start_fraction": 0.0,
            "ema_decay": 0.9,
        },
        "student": drop_unset_model_keys(dataclasses.asdict(copy.deepcopy(rl.student))),
        "teacher": drop_unset_model_keys(dataclasses.asdict(copy.deepcopy(rl.teacher))),
        "logger": "tensorboard",
    }


def dagger_ppo_train_cfg() -> dict[str, Any]:
    """Return the train config of ``MjlabMixingDAggerPPORunner`` for the swing-up (a fresh dict per call).

    It is the registered :data:`DAGGER_PPO_TASK_ID`'s, as mjlab's ``train`` passes it (``asdict`` of its runner
    config): MixingDAggerPPO at its defaults (the recipe), the base task's PPO keys at a fixed learning rate, the
    student of :func:`train_cfg` as the actor (so its distilled checkpoint initialises it), the teacher's critic on the
    ``critic`` group. ``teacher_checkpoint`` is unset: load :func:`teacher_checkpoint` with ``runner.load``.
    """
    register_builtin_dagger_ppo_variants()
    cfg = dataclasses.asdict(registry.load_rl_cfg(DAGGER_PPO_TASK_ID))
    cfg.update(teacher_checkpoint=None, logger="tensorboard")
    return cfg


def teacher_checkpoint() -> str:
    """Return the path of the shipped PPO teacher (mjlab's ``model_399.pt`` of ``Mjlab-Cartpole-Swingup``).

    Raises:
        FileNotFoundError: the file is missing from the installed package (re-train it with
            ``scripts/train_mjlab_cartpole_teacher.sh``).
    """
    path = os.path.join(ASSETS, TEACHER_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"The mjlab swing-up teacher {path} is missing; re-train it with scripts/train_mjlab_cartpole_teacher.sh."
        )
    return path


def _mean_ci95(values: torch.Tensor) -> dict[str, float]:
    """Return the mean and the half-width of its 95% Student-t interval (``evaluation.t_ci95``), rounded."""
    mean, ci95 = t_ci95(values)
    return {"mean": round(mean, 3), "ci95": round(ci95, 3)}


def evaluate_returns(checkpoint: str, num_envs: int = 64, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Return the first-episode returns of the checkpoint's PPO actor, of zero actions and of uniform random actions.

    One env of ``3 * num_envs`` envs: the actor (its mean action) drives the first ``num_envs``, zero actions the next,
    actions uniform in [-1, 1] the last; each group's mean return over one full episode (1000 steps) with its 95%
    interval. The teacher's ceiling and the baselines a normalized return needs.
    """
    env = make_env(3 * num_envs, device, seed)
    runner = MixingDistillationRunner(env, train_cfg(), log_dir=None, device=device)
    runner.load(checkpoint)
    group = torch.arange(3 * num_envs, device=env.device) // num_envs
    generator = torch.Generator(device=env.device).manual_seed(seed)
    obs, _ = env.reset()
    returns = torch.zeros(3 * num_envs, device=env.device)
    ended = torch.zeros(3 * num_envs, dtype=torch.bool, device=env.device)
    with torch.no_grad():
        for _ in range(env.max_episode_length + 1):
            noise = torch.rand(3 * num_envs, 1, generator=generator, device=env.device) * 2 - 1
            action = torch.where(group[:, None] == 0, runner.alg.teacher(obs), 0.0)
            action = torch.where(group[:, None] == 2, noise, action)
            obs, reward, dones, _ = env.step(action)
            returns += torch.where(ended, 0.0, reward)
            ended |= dones.bool()
    if not bool(ended.all()):
        raise RuntimeError(f"{int((~ended).sum())} envs did not end within {env.max_episode_length + 1} steps.")
    env.close()
    result = {name: _mean_ci95(returns[group == i]) for i, name in enumerate(("teacher", "zero", "random"))}
    return {"episodes_per_policy": num_envs, "seed": seed, **result}


def main(argv: list[str] | None = None) -> None:
    """Print :func:`evaluate_returns` of a checkpoint as JSON (``python -m dagmix.integrations.mjlab_bench PATH``)."""
    parser = argparse.ArgumentParser(description=evaluate_returns.__doc__.split("\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="PPO checkpoint (default: the shipped teacher)")
    parser.add_argument("--num-envs", type=int, default=64, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(evaluate_returns(args.checkpoint or teacher_checkpoint(), args.num_envs, args.seed), indent=2))


if __name__ == "__main__":
    main()
