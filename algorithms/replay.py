"""Bounded on-device aggregation buffer: the last N rollouts' (student observation, teacher action) pairs.

A non-recurrent student replays single transitions drawn uniformly. A recurrent student replays sequences: chunks
of ``gradient_length`` consecutive steps of one env of one stored rollout, run from the hidden state the student had
at the chunk's first step during that rollout (recorded on every rollout step; stale by the updates since, but
close), with the hidden state reset at dones as rsl_rl's update does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from rsl_rl.storage import RolloutStorage
from tensordict import TensorDict

from dagmix.algorithms import compat
from dagmix.mixing.options import ReplayConfig


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


def _recurrent_shape(student: torch.nn.Module, num_envs: int) -> tuple[int, tuple[int, ...]] | None:
    """Return (number of hidden-state tensors, shape of each per step) of a recurrent student, None otherwise."""
    if not getattr(student, "is_recurrent", False):
        return None
    packed = getattr(getattr(student, "rnn", None), "rnn", None)  # rsl_rl's RNN wrapper around the recurrent module
    if packed is not None and not isinstance(packed, (torch.nn.GRU, torch.nn.LSTM)) and hasattr(packed, "hidden_size"):
        # one GRU-shaped state that holds more than a GRU's (dagmix.models: FilterRNNModel, EstimatorRNNModel "input")
        return 1, (packed.num_layers, num_envs, packed.hidden_size)
    rnns = [m for m in student.modules() if isinstance(m, (torch.nn.GRU, torch.nn.LSTM))]
    if len(rnns) != 1 or not all(hasattr(student, a) for a in ("get_hidden_state", "reset")):
        raise ValueError(
            f"replay supports recurrent students with one torch GRU/LSTM and rsl_rl's hidden-state API (as RNNModel); "
            f"{type(student).__name__} has {len(rnns)}. Use such a student or set replay.iterations=0."
        )
    rnn = rnns[0]
    layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
    return (2 if isinstance(rnn, torch.nn.LSTM) else 1), (layers, num_envs, rnn.hidden_size)


class AggregationReplay:
    """Ring buffer of whole rollouts on the training device.

    Sampled uniformly per transition for a non-recurrent student, or as chunks of consecutive steps (with the
    hidden state recorded at the chunk's start) for a recurrent one (:meth:`sequence_loss`).
    """

    def __init__(
        self,
        cfg: ReplayConfig,
        student: torch.nn.Module | None,
        storage: RolloutStorage,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        seed: int,
        num_learning_epochs: int,
        gradient_length: int,
        max_grad_norm: float | None,
        reduce_gradients: Callable[[], None] | None,
        mixed_precision: bool,
    ) -> None:
        """Allocate the buffer for the rollouts of ``storage`` (rsl_rl's: (steps, num_envs, ...)) on its device.

        ``student`` is the uncompiled student (None on rsl-rl-lib 3.x: refused); the replay's gradient steps repeat
        rsl_rl's update with its ``optimizer``, ``loss_fn(prediction, label)``, ``num_learning_epochs``,
        ``gradient_length``, ``max_grad_norm``, ``reduce_gradients`` (multi-GPU; None with one process) and
        ``mixed_precision`` (bf16 autocast); ``seed`` seeds the replay's sampling generator.

        Raises:
            ValueError: on rsl-rl-lib 3.x, for a recurrent student other than one GRU/LSTM with rsl_rl's hidden-state
                API, or when the buffer exceeds ``max_memory_gb`` or free memory.
        """
        if student is None:
            raise ValueError(
                "replay needs rsl-rl-lib >= 4 (separate student and teacher models); this is rsl-rl-lib "
                f"{compat.RSL_RL_VERSION}. Set replay.iterations=0 or upgrade rsl-rl-lib."
            )
        self.cfg, self.storage, self.optimizer, self.loss_fn = cfg, storage, optimizer, loss_fn
        self.epochs, self.gradient_length, self.max_grad_norm = num_learning_epochs, gradient_length, max_grad_norm
        self.reduce_gradients, self.mixed_precision = reduce_gradients, mixed_precision
        self.device = torch.device(storage.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        observations, num_actions = storage.observations, storage.privileged_actions.shape[-1]
        groups = list(getattr(student, "obs_groups", observations.keys()))
        steps, num_envs = observations.batch_size[:2]
        self.steps, self.num_envs = steps, num_envs
        self.rollout = steps * num_envs
        self.capacity = cfg.iterations * self.rollout
        per_sample = sum(observations[g][0, 0].numel() * observations[g].element_size() for g in groups)
        per_sample += num_actions * 4
        hidden = _recurrent_shape(student, num_envs)
        self.recurrent = hidden is not None
        if hidden is not None:  # + dones (1 byte) + the hidden state at every step (float32)
            count, (layers, _, size) = hidden
            per_sample += 1 + count * layers * size * 4
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
        self.dones: torch.Tensor | None = None
        self.hidden: list[torch.Tensor] = []  # per (rollout, step): (iterations * steps, layers, num_envs, size)
        self._stage: list[torch.Tensor] = []  # the current rollout's hidden states, (steps, layers, num_envs, size)
        if hidden is not None:
            count, shape = hidden
            self.dones = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
            self.hidden = [torch.zeros(cfg.iterations * steps, *shape, device=self.device) for _ in range(count)]
            self._stage = [torch.zeros(steps, *shape, device=self.device) for _ in range(count)]
        self.filled = 0
        self.next_slot = 0

    def describe(self) -> str:
        """Return the one-line summary printed when the buffer is created."""
        kind = ", sequences with the recorded hidden state" if self.recurrent else ""
        return (
            f"[dagmix] aggregation replay: last {self.cfg.iterations} rollouts ({self.capacity} samples{kind}), "
            f"{self.bytes / 2**20:.1f} MiB on {self.device}, replay ratio {self.cfg.ratio}"
        )

    def record_hidden(self, step: int, hidden: Any) -> None:
        """Record the recurrent student's hidden state before it acts at rollout step ``step`` (None: zeros).

        Args:
            step: The rollout step (``storage.step``); steps beyond the rollout are ignored.
            hidden: rsl_rl's HiddenState: a tensor (layers, num_envs, size) for a GRU, a tuple (h, c) for an LSTM.
        """
        if step >= self.steps:
            return
        parts = hidden if isinstance(hidden, tuple) else (hidden,)
        for i, stage in enumerate(self._stage):
            if hidden is None:
                stage[step].zero_()
            else:
                stage[step].copy_(parts[i])

    def add(self, observations: TensorDict, labels: torch.Tensor, dones: torch.Tensor | None = None) -> None:
        """Store one rollout, (steps, num_envs, ...), overwriting the oldest (recurrent: with its dones, hidden)."""
        start = self.next_slot * self.rollout
        for g in self.obs.keys():
            self.obs[g][start : start + self.rollout].copy_(observations[g].flatten(0, 1))
        self.labels[start : start + self.rollout].copy_(labels.flatten(0, 1))
        if self.dones is not None:
            if dones is None:
                raise ValueError("a recurrent replay stores the rollout's dones: pass dones=storage.dones")
            self.dones[start : start + self.rollout].copy_(dones.reshape(-1).bool())
            first = self.next_slot * self.steps
            for ring, stage in zip(self.hidden, self._stage, strict=True):
                ring[first : first + self.steps].copy_(stage)
        self.next_slot = (self.next_slot + 1) % self.cfg.iterations
        self.filled = min(self.filled + 1, self.cfg.iterations)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[TensorDict, torch.Tensor]:
        """Return ``batch`` transitions drawn uniformly (with replacement) from the stored rollouts."""
        idx = torch.randint(0, self.filled * self.rollout, (batch,), device=self.device, generator=generator)
        return self.obs[idx], self.labels[idx]

    def sample_sequences(
        self, batch: int, length: int, generator: torch.Generator
    ) -> tuple[TensorDict, torch.Tensor, torch.Tensor, Any, torch.Tensor]:
        """Draw ``batch`` chunks of ``length`` consecutive steps (uniform over stored rollout, env and start step).

        Returns:
            observations (batch ``(length, batch)``), labels ``(length, batch, num_actions)``, dones
            ``(length, batch)`` (bool), the hidden state recorded at each chunk's first step (``(layers, batch,
            size)``, a tuple (h, c) for an LSTM), and the flat index of each chunk's first transition ``(batch,)``.
        """
        if not self.recurrent or self.dones is None:
            raise ValueError("sample_sequences needs a recurrent student's replay")
        length = min(length, self.steps)
        starts = self.steps - length + 1
        draw = torch.randint(0, self.filled * starts * self.num_envs, (batch,), device=self.device, generator=generator)
        rollout, rest = draw // (starts * self.num_envs), draw % (starts * self.num_envs)
        step, env = rest // self.num_envs, rest % self.num_envs
        row = rollout * self.steps + step  # index of the chunk's first step in the (rollout, step) rows
        offsets = torch.arange(length, device=self.device).unsqueeze(1)
        idx = (row.unsqueeze(0) + offsets) * self.num_envs + env.unsqueeze(0)  # (length, batch) flat transitions
        parts = tuple(h[row, :, env].transpose(0, 1).contiguous() for h in self.hidden)  # (layers, batch, size)
        hidden = parts if len(parts) > 1 else parts[0]
        return self.obs[idx], self.labels[idx], self.dones[idx], hidden, idx[0]

    def sequence_loss(
        self,
        student: Any,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        batch: int,
        length: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a recurrent ``student`` over sampled chunks as rsl_rl's update does; return (loss, mean step loss).

        The loss is the sum over the chunk's steps of the per-step loss (rsl_rl's gradient step over
        ``gradient_length`` steps); the student's hidden state is replaced (the caller restores it).
        """
        obs, labels, dones, hidden, _ = self.sample_sequences(batch, length, generator)
        student.reset(hidden_state=hidden)
        loss: Any = 0
        for k in range(labels.shape[0]):
            loss = loss + loss_fn(student(obs[k]), labels[k])
            student.reset(dones[k])
            student.detach_hidden_state(dones[k])
        return loss, loss.detach().float() / labels.shape[0]

    def step(self, student: torch.nn.Module, filled: int) -> torch.Tensor:
        """Take the replay's gradient steps on past rollouts, then store this one; return (loss sum, steps).

        Runs after rsl_rl's update, with the same optimizer, gradient clipping, multi-GPU gradient reduction and
        mixed precision; the number of steps is ``ratio`` times the update's on-policy gradient steps.

        Args:
            student: The student the update trains (``alg.student``: compiled under ``torch_compile_mode``).
            filled: The number of steps of the rollout in ``storage``.
        """
        storage = self.storage
        total = torch.zeros(2, device=self.device)
        if self.filled > 0:
            onpolicy_steps = max(1, self.epochs * filled // self.gradient_length)
            n_steps = max(1, round(self.cfg.ratio * onpolicy_steps))
            batch = self.gradient_length * self.num_envs
            hidden = student.get_hidden_state() if self.recurrent else None  # the next rollout's
            for _ in range(n_steps):
                with torch.amp.autocast(  # as rsl_rl's update does
                    device_type=self.device.type, enabled=self.mixed_precision, dtype=torch.bfloat16
                ):
                    if self.recurrent:  # num_envs chunks of gradient_length steps: as one on-policy step
                        loss, logged = self.sequence_loss(
                            student, self.loss_fn, self.num_envs, self.gradient_length, self.generator
                        )
                    else:
                        obs, labels = self.sample(batch, self.generator)
                        loss = logged = self.loss_fn(student(obs), labels)
                self.optimizer.zero_grad()
                loss.backward()
                if self.reduce_gradients is not None:
                    self.reduce_gradients()
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(student.parameters(), self.max_grad_norm)
                self.optimizer.step()
                total += torch.stack([logged.detach().float(), torch.ones((), device=self.device)])
            if self.recurrent:
                student.reset(hidden_state=hidden)
        self.add(storage.observations[:filled], storage.privileged_actions[:filled], storage.dones[:filled])
        return total
