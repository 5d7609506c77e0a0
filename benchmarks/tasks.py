"""The tasks ``compare_schedules.py --task`` runs: how to build each one's envs, train config and teacher.

- ``quadcopter``: the built-in quadcopter and its shipped PPO teacher (the default; its results since the start).
- ``quadcopter_thrown``: the built-in quadcopter started as if thrown (``dagmix.envs.registry.THROWN_QUADCOPTER``):
  an untrained student's episodes end within about 35 steps of 500; shipped PPO teacher.
- ``quadcopter_blind``: the built-in quadcopter whose student has no velocity estimate (``velocity_noise=None``), an
  imitation gap; the quadcopter's shipped teacher.
- ``quadcopter_experts``: the built-in multi-expert example (``dagmix.envs.quadcopter_experts``): half the envs start
  level, half thrown; a ``MultiTeacherModel`` of the shipped ``quadcopter`` and ``quadcopter_thrown`` teachers labels
  each env by its own. Its runs also evaluate the student and each expert alone on that expert's envs
  (``per_expert`` in the run's JSON, :mod:`dagmix.benchmarks.experts`); ``--env-overrides expert_cycle=[k]`` trains
  on expert ``k``'s envs alone (a student distilled from one expert).
- ``cue_doors``: the built-in information-gathering task (``dagmix.envs.cue_doors``): only a visit to the cue shows
  the student which door is the goal, so imitating the teacher fails; shipped PPO teacher, an MLP student (the
  ``--student gru`` default means the task's own student here).
- ``pendulum``: gymnasium's Pendulum-v1 swing-up through the gymnasium adapter, the student without the angular
  velocity, the scripted swing-up controller as the teacher (``dagmix.integrations.gymnasium_pendulum``).
- ``mjlab_cartpole_swingup``: mjlab's Cartpole swing-up (``Mjlab-Cartpole-Swingup-Dagmix``), the student without
  velocities, a PPO teacher trained by mjlab's own ``train`` (``dagmix.integrations.mjlab_bench``).

Returns are reported as a normalised return, (student - random) / (teacher - random), where ``random`` is uniformly
random actions on the same episodes; for ``quadcopter`` and ``quadcopter_blind`` random is taken as 0 (plain student /
teacher return, as their committed results always were: the blind rows were made as ``quadcopter`` with
``velocity_noise=None``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class BenchTask:
    """One benchmark task: everything ``compare_schedules`` needs to distill and evaluate on it."""

    name: str
    make_env: Callable[..., Any]
    """``make_env(num_envs, device, seed, **env_kwargs)`` -> an rsl_rl VecEnv (policy and teacher groups)."""
    train_cfg: Callable[[str], dict[str, Any]]
    """``train_cfg(student)`` -> the distillation train config (student ``gru`` or ``mlp``)."""
    load_teacher: Callable[[Any, str], None]
    """``load_teacher(runner, device)`` makes the runner's teacher the task's teacher."""
    defaults: dict[str, Any]
    """Default sizes: iterations, num_envs, steps_per_env, eval_interval, eval_episodes, final_eval_episodes."""
    random_action_scale: float | None = None
    """Random actions are uniform in [-scale, scale] for the normalised return; None: random is taken as 0."""
    init_at_random_ep_len: bool = False
    """Start the training envs at random points of their first episode (``learn(init_at_random_ep_len=...)``)."""
    needs: str = ""
    """What to install for this task (named in the error when its import fails)."""
    experts: tuple[str, ...] = ()
    """A multi-expert task's experts, in selector order (its teacher is a ``MultiTeacherModel``); () for one teacher."""
    expert_env: Callable[[int], dict[str, Any]] | None = None
    """``expert_env(k)`` -> the env overrides that give every env expert ``k`` (the per-expert evaluation's envs)."""
    dagger_ppo: Callable[[], tuple[type, dict[str, Any]]] | None = None
    """``dagger_ppo()`` -> (runner class, train config) of MixingDAggerPPO at its defaults on this task, as its users
    run it (``compare_dagger_ppo``); None: the task has no teacher-guided RL config."""


class RandomPolicy(torch.nn.Module):
    """Uniformly random actions in [-scale, scale] from its own seeded generator (a baseline for evaluations)."""

    def __init__(self, num_actions: int, scale: float, seed: int, device: str | torch.device = "cpu") -> None:
        """Args: num_actions: action size; scale: half-width of the range; seed: its seed; device: torch device."""
        super().__init__()
        self.num_actions, self.scale = num_actions, scale
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.device = torch.device(device)

    def forward(self, obs: Any) -> torch.Tensor:
        """Return random actions, one row per env of ``obs``."""
        n = obs.batch_size[0]
        u = torch.rand(n, self.num_actions, generator=self.generator, device=self.device)
        return (u * 2.0 - 1.0) * self.scale

    def reset(self, dones: Any = None, hidden_state: Any = None) -> None:
        """Nothing to reset (no memory)."""


# ------------------------------------------------------------------------------------------------ built-in
_BUILTIN_DEFAULTS = {
    "iterations": 200,
    "num_envs": 1024,
    "steps_per_env": 24,
    "eval_interval": 20,
    "eval_episodes": 256,
    "final_eval_episodes": 1000,
}
_CUE_DOORS_DEFAULTS = {**_BUILTIN_DEFAULTS, "iterations": 100, "eval_interval": 10}
"""cue_doors: distill_train_cfg's 100 iterations; its episodes last a few steps, so an evaluation is cheap."""


def _builtin(task: str, defaults: dict[str, Any] | None = None) -> BenchTask:
    def make_env(num_envs: int, device: str, seed: int, **kwargs: Any) -> Any:
        from dagmix.envs import make

        return make(task, num_envs=num_envs, device=device, seed=seed, **kwargs)

    def train_cfg(student: str) -> dict[str, Any]:
        from dagmix.envs.task_configs import distill_train_cfg, filter_student, student_model

        cfg = distill_train_cfg(task)
        if student == "filter":  # the task's own GRU student, whose GRU also reads its observations' rates
            cfg["student"] = filter_student(task, cfg["student"])
        elif student != "gru":  # "gru": distill_train_cfg's own student (cue_doors: an MLP)
            cfg["student"] = student_model(student)
        return cfg

    def load_teacher(runner: Any, device: str) -> None:
        from dagmix.envs.task_configs import EXPERT_TASKS, shipped_teacher

        if task in EXPERT_TASKS:  # the multi-teacher loaded its experts' checkpoints as it was built
            return
        runner.load(shipped_teacher(task), map_location=device)

    def dagger_ppo() -> tuple[type, dict[str, Any]]:
        from rsl_rl.runners import OnPolicyRunner

        from dagmix.envs.task_configs import dagger_ppo_train_cfg

        return OnPolicyRunner, dagger_ppo_train_cfg(task)

    scale = None if task in ("quadcopter", "quadcopter_blind") else 1.0  # the blind rows were made as quadcopter
    sizes = dict(defaults or _BUILTIN_DEFAULTS)
    return BenchTask(task, make_env, train_cfg, load_teacher, sizes, random_action_scale=scale, dagger_ppo=dagger_ppo)


def _quadcopter_experts() -> BenchTask:
    from dagmix.envs.quadcopter_experts import LEVEL, THROWN

    def expert_env(k: int) -> dict[str, Any]:
        return {"expert_cycle": (k,)}

    names = {LEVEL: "level", THROWN: "thrown"}
    experts = tuple(names[k] for k in sorted(names))
    return dataclasses.replace(_builtin("quadcopter_experts"), experts=experts, expert_env=expert_env)


# ------------------------------------------------------------------------------------------------ gymnasium
def _pendulum() -> BenchTask:
    def make_env(num_envs: int, device: str, seed: int, **kwargs: Any) -> Any:
        from dagmix.integrations.gymnasium_pendulum import make_env as make_pendulum

        if device != "cpu":
            raise ValueError(f"The pendulum task runs on the CPU (gymnasium); got device={device!r}.")
        if kwargs:
            raise ValueError(f"The pendulum task takes no env overrides; got {sorted(kwargs)}.")
        return make_pendulum(num_envs, seed)

    def train_cfg(student: str) -> dict[str, Any]:
        from dagmix.integrations.gymnasium_pendulum import Args
        from dagmix.integrations.gymnasium_pendulum import train_cfg as pendulum_cfg

        if student != "gru":
            raise ValueError("The pendulum task's student is the example's GRU (--student gru).")
        return pendulum_cfg(Args())

    def load_teacher(runner: Any, device: str) -> None:
        from dagmix.integrations.callable_teacher import use_callable_teacher
        from dagmix.integrations.gymnasium_pendulum import pendulum_expert

        use_callable_teacher(runner, pendulum_expert)

    defaults = {  # the example's defaults (64 envs, 150 iterations of 32 steps)
        "iterations": 150,
        "num_envs": 64,
        "steps_per_env": 32,
        "eval_interval": 15,
        "eval_episodes": 100,
        "final_eval_episodes": 500,
    }
    return BenchTask("pendulum", make_env, train_cfg, load_teacher, defaults, 2.0, True, "dagmix[gymnasium]")


# ------------------------------------------------------------------------------------------------ mjlab
def _mjlab_cartpole() -> BenchTask:
    def make_env(num_envs: int, device: str, seed: int, **kwargs: Any) -> Any:
        from dagmix.integrations import mjlab_bench

        unknown = sorted(set(kwargs) - {"episode_length_s"})
        if unknown:
            raise ValueError(
                f"The mjlab_cartpole_swingup task takes only episode_length_s as an override; got {unknown}."
            )
        return mjlab_bench.make_env(num_envs, device, seed, **kwargs)

    def train_cfg(student: str) -> dict[str, Any]:
        from dagmix.integrations import mjlab_bench

        if student != "gru":
            raise ValueError("The mjlab_cartpole_swingup task's student is its GRU (--student gru).")
        return mjlab_bench.train_cfg()

    def load_teacher(runner: Any, device: str) -> None:
        from dagmix.integrations import mjlab_bench

        runner.load(mjlab_bench.teacher_checkpoint(), map_location=device)

    def dagger_ppo() -> tuple[type, dict[str, Any]]:
        from dagmix.integrations import mjlab_bench
        from dagmix.integrations.mjlab_tasks import MjlabMixingDAggerPPORunner

        return MjlabMixingDAggerPPORunner, mjlab_bench.dagger_ppo_train_cfg()

    defaults = {  # the smallest budget at which the student learned in the pilots (docs/mjlab.md)
        "iterations": 300,
        "num_envs": 256,
        "steps_per_env": 32,
        "eval_interval": 30,
        "eval_episodes": 64,
        "final_eval_episodes": 256,
    }
    # Episodes end only by time-out (1000 steps, 31 rollouts of 32): started in step, every env would be at the
    # swing-up in the same rollout, once every 31 iterations. mjlab's own train starts them out of step, as here.
    return BenchTask(
        "mjlab_cartpole_swingup",
        make_env,
        train_cfg,
        load_teacher,
        defaults,
        1.0,
        True,
        "dagmix[mjlab]",
        dagger_ppo=dagger_ppo,
    )


TASKS: dict[str, Callable[[], BenchTask]] = {
    "quadcopter": lambda: _builtin("quadcopter"),
    "quadcopter_thrown": lambda: _builtin("quadcopter_thrown"),
    "quadcopter_blind": lambda: _builtin("quadcopter_blind"),
    "quadcopter_experts": _quadcopter_experts,
    "cue_doors": lambda: _builtin("cue_doors", _CUE_DOORS_DEFAULTS),
    "pendulum": _pendulum,
    "mjlab_cartpole_swingup": _mjlab_cartpole,
}


def get_task(name: str) -> BenchTask:
    """Return the benchmark task ``name``; raise ValueError naming the known ones."""
    if name not in TASKS:
        raise ValueError(f"Unknown benchmark task {name!r}; known tasks: {', '.join(TASKS)}.")
    return TASKS[name]()
