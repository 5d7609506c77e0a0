"""A gymnasium vector env as an rsl_rl ``VecEnv`` with ``teacher`` and ``policy`` observation groups."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from rsl_rl.env import VecEnv
from tensordict import TensorDict

ObsFn = Callable[[torch.Tensor], torch.Tensor]
"""``fn(obs) -> group``: obs float32 tensor (num_envs, obs_dim) on the adapter's device; returns (num_envs, k)."""


class GymnasiumVecEnv(VecEnv):
    """Wraps a gymnasium vector env (or a list of env factories) for rsl_rl's runners.

    rsl_rl expects the observation after a reset in the same step as ``done``; gymnasium 1.x vector envs default
    to resetting one step later (``AutoresetMode.NEXT_STEP``). Env factories are therefore vectorized with
    ``AutoresetMode.SAME_STEP``, and a given vector env must use that mode (else a ValueError says how to build one).

    Attributes:
        episode_length_buf: Long tensor, shape (num_envs,), on ``device``: steps since each env's last reset.
            Assigning it (as rsl_rl's ``learn(..., init_at_random_ep_len=True)`` does) also moves the envs' time
            limits, so that the first episodes end at different steps and the envs stay out of step afterwards.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv | Sequence[Callable[[], gym.Env]],
        policy_obs: ObsFn | None = None,
        teacher_obs: ObsFn | None = None,
        device: str = "cpu",
        seed: int | None = 0,
        max_episode_length: int | None = None,
    ) -> None:
        """Build the adapter and reset the env.

        Args:
            env: A gymnasium ``VectorEnv`` with ``autoreset_mode=SAME_STEP``, or a list of ``gym.Env`` factories
                (vectorized here with ``SyncVectorEnv``). Box action spaces only.
            policy_obs: Builds the student's ``policy`` group from the env observation; None: the observation.
            teacher_obs: Builds the ``teacher`` group; None: the observation.
            device: Torch device of the returned tensors.
            seed: Seed of the first reset (None: unseeded).
            max_episode_length: The episodes' step limit; None reads it from the env spec (``max_episode_steps``).
        """
        if not isinstance(env, gym.vector.VectorEnv):
            env = gym.vector.SyncVectorEnv(list(env), autoreset_mode=AutoresetMode.SAME_STEP)
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"The vector env resets with autoreset_mode={mode!r}, but rsl_rl needs the reset observation in the "
                "same step as done: build it with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP (e.g. "
                "gym.make_vec(id, n, vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP})), or pass a list of "
                "env factories."
            )
        space = env.single_action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"Only Box action spaces are supported, got {space!r}.")
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = int(np.prod(space.shape))
        self._action_shape = (self.num_envs, *space.shape)
        self._action_dtype = space.dtype
        self.device = torch.device(device)
        if max_episode_length is None:
            spec = getattr(env, "spec", None)
            if spec is None and hasattr(env, "envs"):
                spec = env.envs[0].spec
            max_episode_length = getattr(spec, "max_episode_steps", None)
        if max_episode_length is None:
            raise ValueError("max_episode_length is unknown: the env spec has no max_episode_steps; pass it.")
        self.max_episode_length = int(max_episode_length)
        self.cfg = {"env": str(getattr(env, "spec", None) or env), "num_envs": self.num_envs}
        self._policy_obs = policy_obs or (lambda o: o)
        self._teacher_obs = teacher_obs or (lambda o: o)
        self._episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.seed = seed
        obs, _ = env.reset(seed=seed)
        self._obs = self._to_tensor(obs)

    @property
    def episode_length_buf(self) -> torch.Tensor:
        """Steps since each env's last reset."""
        return self._episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        """Set the steps since the last reset, and move each env's ``TimeLimit`` to match (SyncVectorEnv only)."""
        steps = torch.as_tensor(value, dtype=torch.long).reshape(self.num_envs)
        limits = [_time_limit(sub) for sub in getattr(self.env, "envs", [])]
        if len(limits) != self.num_envs or any(limit is None for limit in limits):
            raise ValueError(
                "Setting episode_length_buf (e.g. rsl_rl's init_at_random_ep_len=True) moves each env's time limit, "
                f"which needs a SyncVectorEnv of envs wrapped in gymnasium's TimeLimit; got {type(self.env).__name__}"
                ". Pass a list of env factories of registered envs (gym.make adds the TimeLimit), or call learn() "
                "with init_at_random_ep_len=False."
            )
        bad = steps[(steps < 0) | (steps >= self.max_episode_length)]
        if bad.numel():
            raise ValueError(
                f"episode_length_buf values must lie in [0, {self.max_episode_length}) (max_episode_length), got "
                f"{bad.tolist()[:5]}."
            )
        for limit, n in zip(limits, steps.tolist(), strict=True):
            limit._elapsed_steps = n
        self._episode_length_buf = steps.to(self.device)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(self.num_envs, -1).to(self.device)

    def get_observations(self) -> TensorDict:
        """Return the ``policy`` and ``teacher`` groups of the current observation."""
        return TensorDict(
            {"policy": self._policy_obs(self._obs), "teacher": self._teacher_obs(self._obs)},
            batch_size=[self.num_envs],
            device=self.device,
        )

    def reset(self) -> TensorDict:
        """Reset every env (the next episodes of each env's random stream) and return the observations."""
        obs, _ = self.env.reset()
        self._obs = self._to_tensor(obs)
        self._episode_length_buf.zero_()
        return self.get_observations()

    def reseed(self) -> None:
        """Reseed every env with the constructor's ``seed``: the following resets replay the same episodes."""
        if self.seed is None:
            raise ValueError("This GymnasiumVecEnv is unseeded (seed=None): it cannot replay the same episodes.")
        obs, _ = self.env.reset(seed=self.seed)
        self._obs = self._to_tensor(obs)
        self._episode_length_buf.zero_()

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Step every env; a finished env's returned observation is already its reset observation.

        Args:
            actions: Tensor (num_envs, num_actions), any device.

        Returns:
            obs groups, rewards (num_envs,), dones (num_envs,) long, extras with ``time_outs`` (truncated and not
            terminated) and ``log``.
        """
        a = actions.detach().to("cpu", torch.float32).numpy().reshape(self._action_shape).astype(self._action_dtype)
        obs, rewards, terminated, truncated, _ = self.env.step(a)
        self._obs = self._to_tensor(obs)
        term = torch.as_tensor(np.asarray(terminated), device=self.device)
        trunc = torch.as_tensor(np.asarray(truncated), device=self.device)
        dones = term | trunc
        self._episode_length_buf += 1
        self._episode_length_buf.masked_fill_(dones, 0)
        rew = torch.as_tensor(np.asarray(rewards), dtype=torch.float32, device=self.device)
        extras = {"time_outs": trunc & ~term, "log": {}}
        return self.get_observations(), rew, dones.to(torch.long), extras

    def close(self) -> None:
        """Close the gymnasium env."""
        self.env.close()


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    """Return the outermost ``TimeLimit`` wrapper of ``env``, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None
