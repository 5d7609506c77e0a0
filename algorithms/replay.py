"""Bounded on-device aggregation buffer: the last N rollouts' (student observation, teacher action) pairs."""

from __future__ import annotations

import os

import torch
from tensordict import TensorDict

from dagmix.algorithms.training_options import ReplayConfig


def free_memory_bytes(device: torch.device) -> int:
    """Return the free memory of ``device``: CUDA's free bytes, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


class AggregationReplay:
    """Ring buffer of whole rollouts on the training device, sampled uniformly per transition.

    Only non-recurrent students are supported: a recurrent student's output depends on its hidden state, which
    a replayed transition does not carry (that would need sequence sampling with a burn-in).
    """

    def __init__(
        self,
        cfg: ReplayConfig,
        student: torch.nn.Module,
        observations: TensorDict,
        num_actions: int,
        device: str,
    ) -> None:
        """Allocate the buffer for ``observations`` shaped like rsl_rl's storage, (steps, num_envs, ...).

        Raises:
            ValueError: for a recurrent student, or when the buffer exceeds ``max_memory_gb`` or free memory.
        """
        if getattr(student, "is_recurrent", False):
            raise ValueError(
                "replay is not supported with a recurrent student (e.g. RNNModel): a replayed transition lacks the "
                "hidden state the student had there. Use a non-recurrent student, or set replay.iterations=0."
            )
        self.cfg = cfg
        self.device = torch.device(device)
        groups = list(getattr(student, "obs_groups", observations.keys()))
        steps, num_envs = observations.batch_size[:2]
        self.rollout = steps * num_envs
        self.capacity = cfg.iterations * self.rollout
        per_sample = sum(observations[g][0, 0].numel() * observations[g].element_size() for g in groups)
        per_sample += num_actions * 4
        self.bytes = self.capacity * per_sample
        gib = self.bytes / 2**30
        if cfg.max_memory_gb is not None and gib > cfg.max_memory_gb:
            raise ValueError(
                f"replay needs {gib:.2f} GiB ({cfg.iterations} rollouts x {steps} steps x {num_envs} envs x "
                f"{per_sample} bytes), above replay.max_memory_gb={cfg.max_memory_gb}. Lower replay.iterations."
            )
        free = free_memory_bytes(self.device)
        if self.bytes > 0.9 * free:
            raise ValueError(
                f"replay needs {gib:.2f} GiB on {self.device}, but only {free / 2**30:.2f} GiB is free. Lower "
                "replay.iterations."
            )
        self.obs = TensorDict(
            {g: torch.zeros(self.capacity, *observations[g].shape[2:], dtype=observations[g].dtype) for g in groups},
            batch_size=[self.capacity],
            device=self.device,
        )
        self.labels = torch.zeros(self.capacity, num_actions, device=self.device)
        self.filled = 0
        self.next_slot = 0

    def describe(self) -> str:
        """Return the one-line summary printed when the buffer is created."""
        return (
            f"[dagmix] aggregation replay: last {self.cfg.iterations} rollouts ({self.capacity} samples), "
            f"{self.bytes / 2**20:.1f} MiB on {self.device}, replay ratio {self.cfg.ratio}"
        )

    def add(self, observations: TensorDict, labels: torch.Tensor) -> None:
        """Store one rollout, (steps, num_envs, ...), overwriting the oldest."""
        start = self.next_slot * self.rollout
        for g in self.obs.keys():
            self.obs[g][start : start + self.rollout].copy_(observations[g].flatten(0, 1))
        self.labels[start : start + self.rollout].copy_(labels.flatten(0, 1))
        self.next_slot = (self.next_slot + 1) % self.cfg.iterations
        self.filled = min(self.filled + 1, self.cfg.iterations)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[TensorDict, torch.Tensor]:
        """Return ``batch`` transitions drawn uniformly (with replacement) from the stored rollouts."""
        idx = torch.randint(0, self.filled * self.rollout, (batch,), device=self.device, generator=generator)
        return self.obs[idx], self.labels[idx]
