"""The iteration and phase bookkeeping of :class:`~dagmix.algorithms.MixingDistillation`, as a mixin.

It reads and writes the algorithm's ``schedule``, ``mixing_policy``, ``_iteration``, ``_runner_iteration``,
``_pending``, ``_beta``, ``_phase``, ``_forced_phase2_from``, ``_seen_positive_beta``, ``_banner_printed``,
``_run_length``, ``max_iterations`` and ``phase_console_output``, all set up in ``MixingDistillation.__init__``,
and rsl_rl's ``device``, ``teacher_loaded``, ``is_multi_gpu``, ``gpu_global_rank`` and ``gpu_world_size``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from dagmix.algorithms.phase_log import switch_banner, switch_beyond_end
from dagmix.mixing.policy import reseed_value


class MixingRun:
    """What every mixing algorithm shares: the per-rank mask seed, the run's settings and the switch banner.

    Used by MixingDistillation (through :class:`MixingIterations`) and MixingDAggerPPO. Reads ``mixing_cfg``,
    ``mixing_policy``, ``phase_console_output``, ``_seen_positive_beta`` and ``_banner_printed``.
    """

    def configure_run(self, max_iterations: int | None = None, seed: int | None = None) -> None:
        """Set the run length and derive the mask seed from the run's seed (unless ``mixing.seed`` is set)."""
        if max_iterations is not None:
            self.max_iterations = int(max_iterations)
        if self.mixing_cfg.seed is None and seed is not None:
            self.mixing_policy.seed = reseed_value(self._rank_seed(int(seed)), 0)
            self.mixing_policy.generator.manual_seed(self.mixing_policy.seed)

    def _note_beta(self, beta: float, it: int) -> None:
        """Print the switch banner once, at the first iteration with beta 0 after one with beta > 0."""
        if beta > 0.0:
            self._seen_positive_beta = True
        elif self._seen_positive_beta and not self._banner_printed:
            self._banner_printed = True
            if self._console:
                print(switch_banner(it))

    @property
    def _console(self) -> bool:
        return self.phase_console_output and self.gpu_global_rank == 0

    def _rank_seed(self, base: int) -> int:
        """Return ``base`` made distinct per rank, offsetting by the rank at most once.

        Launchers such as Isaac Lab's train script already add the rank to the run's seed; where the ranks'
        seeds already differ they are kept, and where they coincide (e.g. an explicit ``mixing.seed``), the
        global rank is added. Without a process group the rank is added.
        """
        if not getattr(self, "is_multi_gpu", False):
            return base
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return base + self.gpu_global_rank
        mine = torch.tensor([base], dtype=torch.int64, device=self.device)
        everyone = [torch.zeros_like(mine) for _ in range(self.gpu_world_size)]
        dist.all_gather(everyone, mine)
        seeds = [int(t.item()) for t in everyone]
        return base if len(set(seeds)) == len(seeds) else base + self.gpu_global_rank


class MixingIterations(MixingRun):
    """MixingDistillation's beta and phase per iteration, the runner's iteration, the two-stage patch's helpers."""

    def beta_at(self, iteration: int) -> float:
        """Return the effective beta at ``iteration`` (the schedule, or 0 after :meth:`switch_to_phase2`)."""
        if self._forced_phase2_from is not None and iteration >= self._forced_phase2_from:
            return 0.0
        return self.schedule.beta(iteration)

    def phase_at(self, iteration: int) -> int:
        """Return the training phase at ``iteration``: the schedule's, or 2 after :meth:`switch_to_phase2`."""
        if self._forced_phase2_from is not None and iteration >= self._forced_phase2_from:
            return 2
        return self.schedule.phase(iteration)

    @property
    def iteration(self) -> int:
        """The runner iteration of the current (or next) rollout."""
        return self._iteration

    def sync_iteration(self, iteration: int, num_learning_iterations: int | None = None) -> None:
        """Align with the runner's iteration at the start of ``learn`` (MixingDistillationRunner calls this)."""
        self._runner_iteration = self._iteration = int(iteration)
        self._pending = True
        if num_learning_iterations is not None:
            self._run_length = int(num_learning_iterations)

    def _switch_iteration(self) -> int | None:
        zero = self.schedule.first_zero_iteration()
        if self._forced_phase2_from is not None:
            zero = self._forced_phase2_from if zero is None else min(zero, self._forced_phase2_from)
        return zero

    def _warn_if_switch_beyond_end(self) -> None:
        length = getattr(self, "_run_length", None) or self.max_iterations
        message = switch_beyond_end(self._iteration, length, self._switch_iteration())
        if message:
            warnings.warn(message, stacklevel=3)

    def _begin_iteration(self) -> None:
        if not self.teacher_loaded:  # once per iteration, a Python flag: before any rollout of an unloaded teacher
            raise ValueError(
                "Teacher model parameters not loaded. Load a teacher checkpoint (runner.load(path)) before learn()."
            )
        it = self._iteration
        beta = self.beta_at(it)
        self.mixing_policy.begin_iteration(beta, it)
        self._beta, self._phase = beta, self.phase_at(it)  # before observe(): adaptive schedules then move on
        self._pending = False
        self._note_beta(beta, it)

    # ------------------------------------------------------------------ the two-stage patch's helpers
    def get_training_phase_info(self) -> dict[str, Any]:
        """Return the current phase, iteration, beta and schedule (the two-stage patch's helper)."""
        it = self._iteration
        return {
            "training_phase": self.phase_at(it),
            "current_iteration": it,
            "beta": self.beta_at(it),
            "phase1_iterations": self.schedule.phase1_iterations,
            "switch_iteration": self._switch_iteration(),
            "schedule": self.schedule.describe(),
        }

    def switch_to_phase2(self) -> None:
        """Force beta = 0 from the next iteration on (the two-stage patch's helper); persists in checkpoints."""
        start = self._iteration if self._pending else self._iteration + 1
        if self._forced_phase2_from is None or start < self._forced_phase2_from:
            self._forced_phase2_from = start
