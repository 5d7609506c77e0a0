"""Evaluate one policy driving a VecEnv alone: per-episode return, success and final distance, with 95% CIs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from scipy import stats


@dataclass
class EvalResult:
    """Per-policy evaluation summary (JSON keys are the field names)."""

    return_mean: float
    """Mean undiscounted episode return."""
    return_ci95: float
    """Half-width of the 95% Student-t confidence interval of the mean return."""
    success_rate: float
    """Fraction of episodes that ended within the success radius of the goal (nan: the env reports no success)."""
    success_ci95: float
    """Half-width of the 95% Wilson score interval of the success rate (max distance to its bounds)."""
    final_distance: float
    """Mean distance to the goal at episode end (m; nan: the env reports no distance)."""
    final_distance_ci95: float
    """Half-width of the 95% Student-t confidence interval of the mean final distance."""
    num_episodes: int
    """Episodes the summary is over."""
    behavior_loss: float | None = None
    """With a ``teacher``: MSE between the policy's action and the teacher's on the states the policy visited
    (each env's first episode), averaged over steps and action dimensions; None (not in the JSON) otherwise."""

    def to_dict(self) -> dict[str, float | int]:
        """Return the JSON form (``behavior_loss`` only when it was measured)."""
        d = asdict(self)
        if d["behavior_loss"] is None:
            del d["behavior_loss"]
        return d


def t_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Return (mean, half-width of the 95% Student-t interval) of a 1-D sample."""
    x = values.double().cpu()
    n = x.numel()
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan")
    sem = float(x.std(unbiased=True)) / math.sqrt(n)
    return mean, float(stats.t.ppf(0.975, n - 1)) * sem


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """Return (rate, half-width) of the 95% Wilson score interval; the half-width is the larger side."""
    if n == 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.975))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(p - (centre - half), (centre + half) - p)


def _clone_hidden(hidden: Any) -> Any:
    if hidden is None:
        return None
    if isinstance(hidden, tuple):  # an LSTM's (h, c), or one state per expert (None for a feed-forward one)
        return tuple(_clone_hidden(h) for h in hidden)
    return hidden.clone()


def evaluate_policy(
    env: Any,
    policy: torch.nn.Module,
    num_episodes: int,
    teacher: torch.nn.Module | None = None,
    teacher_action_clip: float | None = None,
) -> EvalResult:
    """Run ``policy`` (deterministic output) alone on ``env`` and summarize each env's first ``num_episodes``.

    Every env's first episode counts once; the env must have at least ``num_episodes`` envs, and it is reset
    first. Where ``env`` exposes ``last_episode_success`` and ``last_episode_final_distance`` (bool / float
    tensors, shape (num_envs,), valid where ``dones``), as the built-in tasks do, the success rate and final
    distance are summarized too; otherwise (a gymnasium or mjlab env) they are nan.

    Args:
        env: An rsl_rl VecEnv of the built-in tasks.
        policy: rsl_rl model called as ``policy(obs)`` (deterministic output); a recurrent model is reset first,
            and its hidden state and train/eval mode are restored afterwards, so a training run is left untouched.
        num_episodes: Episodes to collect (<= env.num_envs).
        teacher: Optional non-recurrent teacher model, queried (never executed) on the states ``policy`` visits,
            to measure the behaviour loss on the policy's own state distribution.
        teacher_action_clip: Clamp the teacher's action to [-clip, clip] before the loss, as the distillation's
            stored labels are (``MixingDistillation(teacher_action_clip=...)``).
    """
    if num_episodes < 1 or num_episodes > env.num_envs:
        raise ValueError(f"num_episodes={num_episodes} must be in [1, env.num_envs={env.num_envs}].")
    was_training = policy.training
    hidden = _clone_hidden(policy.get_hidden_state()) if hasattr(policy, "get_hidden_state") else None
    try:
        return _run_episodes(env, policy, num_episodes, teacher, teacher_action_clip)
    finally:
        policy.train(was_training)
        if hidden is not None:
            policy.reset(hidden_state=hidden)


def _run_episodes(
    env: Any, policy: torch.nn.Module, num_episodes: int, teacher: torch.nn.Module | None, clip: float | None
) -> EvalResult:
    policy.eval()
    if teacher is not None:
        teacher.eval()
    env.reset()
    policy.reset()
    n, device = env.num_envs, env.device
    returns = torch.zeros(n, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    success = torch.zeros(n, dtype=torch.bool, device=device)
    final_distance = torch.zeros(n, device=device)
    sq_err = torch.zeros(n, device=device)
    counted = torch.zeros(n, device=device)
    obs = env.get_observations()
    has_outcome = hasattr(env, "last_episode_success") and hasattr(env, "last_episode_final_distance")
    with torch.inference_mode():
        for _ in range(int(env.max_episode_length) + 1):
            actions = policy(obs)
            if teacher is not None:
                target = teacher(obs)
                if clip is not None:
                    target = target.clamp(-clip, clip)
                live = (~finished).float()
                sq_err += live * (actions - target).square().mean(dim=-1)
                counted += live
            obs, rewards, dones, _ = env.step(actions)
            dones = dones.bool()
            returns += torch.where(finished, torch.zeros_like(rewards), rewards)
            first_end = dones & ~finished
            if has_outcome:
                success = torch.where(first_end, env.last_episode_success, success)
                final_distance = torch.where(first_end, env.last_episode_final_distance, final_distance)
            finished |= dones
            policy.reset(dones)
    if not bool(finished[:num_episodes].all()):
        raise RuntimeError("Some evaluation episodes did not end within max_episode_length steps.")
    ret_mean, ret_ci = t_ci95(returns[:num_episodes])
    nan = float("nan")
    rate, rate_ci = wilson_ci95(int(success[:num_episodes].sum()), num_episodes) if has_outcome else (nan, nan)
    dist_mean, dist_ci = t_ci95(final_distance[:num_episodes]) if has_outcome else (nan, nan)
    loss = None
    if teacher is not None:
        loss = float(sq_err[:num_episodes].sum() / counted[:num_episodes].sum())
    return EvalResult(ret_mean, ret_ci, rate, rate_ci, dist_mean, dist_ci, num_episodes, loss)


class SameEpisodes:
    """Evaluate policies on one fixed set of episodes: same starts, same noise, for every policy and every call.

    A built-in task's seeded generator (``env.gen``) is saved once and restored before each run: those tasks draw
    their resets and noise for every env at once, a fixed number of values per step, so each env's first episode
    depends only on that state, not on the policy. An env with a ``reseed()`` method instead (the gymnasium
    adapter, the mjlab benchmark env) is reseeded with its own seed before each run: the episodes after the reseed
    are then the same for every run. Returns are then paired: the student's divided by the
    teacher's on the same episodes has no noise of its own from the episode draw.
    """

    def __init__(self, env: Any, num_episodes: int) -> None:
        """Args: env: a VecEnv with a ``gen`` torch.Generator or a ``reseed()`` method; num_episodes: episodes."""
        gen = getattr(env, "gen", None)
        if not isinstance(gen, torch.Generator) and not callable(getattr(env, "reseed", None)):
            raise ValueError(
                f"{type(env).__name__} has no seeded generator `gen` and no reseed() method: a same-episode "
                "evaluation needs one (the built-in tasks and dagmix's gymnasium adapter have them)."
            )
        if not isinstance(gen, torch.Generator) and getattr(env, "seed", 0) is None:
            raise ValueError(f"This {type(env).__name__} is unseeded (seed=None): it cannot replay the same episodes.")
        self.env, self.num_episodes = env, num_episodes
        self._state = gen.get_state() if isinstance(gen, torch.Generator) else None

    def __call__(
        self, policy: torch.nn.Module, teacher: torch.nn.Module | None = None, teacher_action_clip: float | None = None
    ) -> EvalResult:
        """Run ``policy`` alone on the episodes (see :func:`evaluate_policy` for the arguments)."""
        if self._state is not None:
            self.env.gen.set_state(self._state)
        else:
            self.env.reseed()
        return evaluate_policy(self.env, policy, self.num_episodes, teacher, teacher_action_clip)


def best_key(result: EvalResult) -> tuple[float, float]:
    """Return the sort key of the ``model_best.pt`` rule: the success rate, then the return.

    Periodic evaluations replay the same episodes (:class:`SameEpisodes`), so returns are comparable across
    iterations and ranking by return is ranking by the return relative to the teacher on those episodes. A higher
    return never outranks a higher success rate, so a checkpoint that fails more often cannot be picked for a return
    that is higher by noise; a task without a success rate (nan) is ranked by the return alone.
    """
    return (result.success_rate if math.isfinite(result.success_rate) else 0.0), result.return_mean


BEST_RULE = "highest success rate, then highest return, on the same episodes at every evaluation"
"""The ``model_best.pt`` rule in words (printed under the final table)."""
