"""A tiny batched point-mass reaching task (rsl_rl VecEnv) for examples and tests; not a benchmark."""

from __future__ import annotations

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict


class PointMassEnv(VecEnv):
    """2-D point mass pushed by a force toward a goal.

    Observation groups: ``teacher`` (exact goal offset and velocity) and ``policy`` (noisy goal offset and the
    last action: the student must infer velocity). Episodes last ``max_episode_length`` steps; leaving the
    3 x 3 box terminates. Everything lives on ``device`` and is updated in place.
    """

    def __init__(
        self, num_envs: int = 64, device: str = "cpu", seed: int = 0, max_episode_length: int = 50, noise: float = 0.05
    ) -> None:
        """Args: num_envs: parallel envs; device: torch device; seed: env RNG seed; noise: student obs noise std."""
        self.num_envs = num_envs
        self.num_actions = 2
        self.max_episode_length = max_episode_length
        self.device = torch.device(device)
        self.cfg = {"name": "point_mass", "num_envs": num_envs, "max_episode_length": max_episode_length}
        self.noise = noise
        self.dt = 0.1
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        self.pos = torch.zeros(num_envs, 2, device=self.device)
        self.vel = torch.zeros(num_envs, 2, device=self.device)
        self.goal = torch.zeros(num_envs, 2, device=self.device)
        self.last_action = torch.zeros(num_envs, 2, device=self.device)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._reset(torch.ones(num_envs, dtype=torch.bool, device=self.device))

    def _rand(self, n: int, scale: float) -> torch.Tensor:
        return (torch.rand(n, 2, generator=self.gen, device=self.device) * 2 - 1) * scale

    def _reset(self, mask: torch.Tensor) -> None:
        m = mask.unsqueeze(-1)
        n = self.num_envs
        self.pos = torch.where(m, self._rand(n, 1.0), self.pos)
        self.goal = torch.where(m, self._rand(n, 1.0), self.goal)
        self.vel = torch.where(m, torch.zeros_like(self.vel), self.vel)
        self.last_action = torch.where(m, torch.zeros_like(self.last_action), self.last_action)
        self.episode_length_buf = torch.where(mask, torch.zeros_like(self.episode_length_buf), self.episode_length_buf)

    def get_observations(self) -> TensorDict:
        """Return the ``policy`` and ``teacher`` observation groups."""
        offset = self.goal - self.pos
        noisy = offset + self.noise * torch.randn(offset.shape, generator=self.gen, device=self.device)
        return TensorDict(
            {
                "policy": torch.cat([noisy, self.last_action], dim=-1),
                "teacher": torch.cat([offset, self.vel], dim=-1),
            },
            batch_size=[self.num_envs],
            device=self.device,
        )

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Apply forces (clamped to [-1, 1]); return obs, rewards (num_envs,), dones (num_envs,), extras."""
        a = actions.clamp(-1.0, 1.0)
        self.vel = 0.9 * self.vel + self.dt * 2.0 * a
        self.pos = self.pos + self.dt * self.vel
        self.last_action = a
        self.episode_length_buf += 1
        dist = (self.goal - self.pos).norm(dim=-1)
        rewards = (1.0 - torch.tanh(dist / 0.5)) * self.dt
        out = (self.pos.abs() > 3.0).any(dim=-1)
        time_outs = self.episode_length_buf >= self.max_episode_length
        dones = out | time_outs
        extras = {"time_outs": time_outs, "log": {"Toy/distance": dist}}
        self._reset(dones)
        return self.get_observations(), rewards, dones.to(torch.long), extras
