"""Per-env teacher/student assignment on the env's device."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from dagmix.mixing.config import check_drawing

_SEED_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: decorrelates (seed, iteration) re-seeds


def reseed_value(seed: int, iteration: int) -> int:
    """Return the deterministic generator seed used when a saved generator state cannot be restored."""
    return (seed * _SEED_MIX + iteration * 0x2545F4914F6CDD1D + 1) % (2**63 - 1)


class MixingPolicy:
    """Decides, per env, whether the teacher's or the student's action is executed.

    Attributes:
        teacher_mask: Bool tensor, shape (num_envs,), on ``device``; True where the teacher drives.
        beta: The teacher probability of the current iteration (a Python float, set by :meth:`begin_iteration`).
    """

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        granularity: str = "step",
        assignment: str = "random",
        seed: int = 0,
    ) -> None:
        """Create the mask (all False: the student drives until the first :meth:`begin_iteration`).

        Args:
            num_envs: Number of parallel envs (>= 1).
            device: The env's device; the mask and the generator live there.
            granularity: ``step`` (redraw every step), ``episode`` (keep a draw until the env's episode ends) or
                ``iteration`` (redraw at each iteration start).
            assignment: ``random`` (independent Bernoulli(beta)) or ``quota`` (exactly floor(beta * n + 0.5)).
            seed: Seed of the mask generator.
        """
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} must be a positive int.")
        check_drawing(granularity, assignment)
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.granularity = granularity
        self.assignment = assignment
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        self.teacher_mask = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._uniform = torch.empty(num_envs, device=self.device)
        self.beta = 0.0
        self.iteration = 0
        self._drawn = False  # whether the mask has ever been drawn (episode granularity keeps draws)
        self._version = 0  # bumped whenever teacher_mask may have changed (host-side counter, no sync)
        self._wide: torch.Tensor | None = None  # teacher_mask expanded to (num_envs, num_actions), contiguous
        self._wide_version = -1

    # ------------------------------------------------------------------ drawing
    def _draw_all(self) -> None:
        """Redraw every env's assignment for the current beta (no host sync)."""
        if self.beta in (0.0, 1.0):
            self.teacher_mask.fill_(self.beta == 1.0)
        elif self.assignment == "quota":
            k = int(self.beta * self.num_envs + 0.5)
            perm = torch.randperm(self.num_envs, generator=self.generator, device=self.device)
            self.teacher_mask.fill_(False)
            self.teacher_mask.index_fill_(0, perm[:k], True)
        else:
            torch.rand(self.num_envs, generator=self.generator, device=self.device, out=self._uniform)
            torch.lt(self._uniform, self.beta, out=self.teacher_mask)
        self._drawn = True
        self._version += 1

    def begin_iteration(self, beta: float, iteration: int) -> None:
        """Set this iteration's beta; redraws as the granularity demands (all envs at once when beta is 0 or 1)."""
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta={beta!r} is outside [0, 1].")
        self.beta = float(beta)
        self.iteration = int(iteration)
        if self.granularity == "iteration" or self.beta in (0.0, 1.0) or not self._drawn:
            self._draw_all()

    def step(self) -> torch.Tensor:
        """Advance one env step (redraws with ``step`` granularity) and return ``teacher_mask``."""
        if self.granularity == "step" and 0.0 < self.beta < 1.0:
            self._draw_all()
        return self.teacher_mask

    def on_dones(self, dones: torch.Tensor) -> None:
        """Renew the draw of envs whose episode just ended (``episode`` granularity only; no host sync).

        Args:
            dones: Tensor, shape (num_envs,), on ``device``; nonzero where an episode ended.
        """
        if self.granularity != "episode" or self.beta in (0.0, 1.0):
            return
        torch.rand(self.num_envs, generator=self.generator, device=self.device, out=self._uniform)
        fresh = self._uniform < self.beta
        done = dones.view(-1).to(torch.bool)
        torch.where(done, fresh, self.teacher_mask, out=self.teacher_mask)
        self._version += 1

    def select(self, student_actions: torch.Tensor, teacher_actions: torch.Tensor) -> torch.Tensor:
        """Return the executed actions: the teacher's where ``teacher_mask`` is set, else the student's.

        At beta 0 (1) this is the student's (teacher's) tensor itself, as stock rsl_rl returns its action;
        otherwise one ``torch.where`` over a contiguous copy of the mask (a broadcast mask is several times slower
        on the CPU), refreshed only when the mask changed.

        Args:
            student_actions: Tensor, shape (num_envs, num_actions), on ``device``.
            teacher_actions: Tensor, same shape and device.
        """
        if self.beta == 0.0:
            return student_actions
        if self.beta == 1.0:
            return teacher_actions
        if self._wide is None or self._wide.shape != student_actions.shape:
            self._wide = torch.empty(student_actions.shape, dtype=torch.bool, device=self.device)
            self._wide_version = -1
        if self._wide_version != self._version:
            self._wide.copy_(self.teacher_mask.unsqueeze(-1).expand_as(self._wide))
            self._wide_version = self._version
        return torch.where(self._wide, teacher_actions, student_actions)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Return the generator state, mask, beta and settings (tensors on the CPU)."""
        return {
            "generator_state": self.generator.get_state().cpu(),
            "generator_device_type": self.device.type,
            "seed": self.seed,
            "teacher_mask": self.teacher_mask.cpu().clone(),
            "beta": self.beta,
            "iteration": self.iteration,
            "drawn": self._drawn,
            "granularity": self.granularity,
            "assignment": self.assignment,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output exactly where possible.

        A generator state saved on another device type cannot be restored; the generator is then re-seeded
        deterministically from (seed, iteration), with a warning. A mask of another size is redrawn, with a warning.
        """
        self.seed = int(state["seed"])
        self.beta = float(state["beta"])
        self.iteration = int(state["iteration"])
        if state["generator_device_type"] == self.device.type:
            self.generator.set_state(state["generator_state"])
        else:
            warnings.warn(
                f"The mask generator state was saved on device type '{state['generator_device_type']}' and cannot be "
                f"restored on '{self.device.type}'; re-seeding it from (seed={self.seed}, "
                f"iteration={self.iteration}). Masks will differ from an uninterrupted run.",
                stacklevel=2,
            )
            self.reseed(self.iteration)
        mask = state["teacher_mask"]
        if mask.shape == self.teacher_mask.shape:
            self.teacher_mask.copy_(mask.to(self.device))
            self._drawn = bool(state["drawn"])
            self._version += 1
        else:
            warnings.warn(
                f"The saved teacher mask has {mask.numel()} envs but this run has {self.num_envs}; redrawing it.",
                stacklevel=2,
            )
            self._draw_all()

    def reseed(self, iteration: int) -> None:
        """Re-seed the generator deterministically from (seed, iteration)."""
        self.generator.manual_seed(reseed_value(self.seed, iteration))
