"""MixingCore: the mixing state both algorithms hold (mask, schedule, counters, phase lines, callbacks, checkpoint).

MixingDistillation and MixingDAggerPPO each hold one as ``mixing_core`` and keep only their own loss and update.
Per iteration the algorithm calls :meth:`MixingCore.begin_iteration` before its first rollout step and
:meth:`MixingCore.end_iteration` at the end of its ``update``; everything in between (the per-step mask) is
``mixing_core.policy``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from dagmix import __version__
from dagmix.algorithms.phase_log import ExtrasLog, phase_lines, switch_banner, switch_beyond_end
from dagmix.mixing.config import MixingConfig
from dagmix.mixing.names import did_you_mean
from dagmix.mixing.options import LearningRateScheduleConfig
from dagmix.mixing.policy import MixingPolicy, reseed_value
from dagmix.mixing.schedules import BetaSchedule

MIXING_STATE_FORMAT_VERSION = 1
"""Version of the ``checkpoint["dagmix"]`` layout (both algorithms); bumped on incompatible changes."""

CHECKPOINT_KEY = "dagmix"
"""Key of the mixing state in rsl_rl checkpoints (ignored by stock rsl_rl when loading)."""

IterationCallback = Callable[..., Mapping[str, float] | None]
"""``fn(iteration, metrics)`` or ``fn(iteration, metrics, losses)``; may return scalars to log."""


def check_algorithm_keys(
    algorithm: str, keys: Iterable[str], own: Sequence[str], parent: type, valid: Iterable[str]
) -> None:
    """Raise ValueError for the first of ``keys`` that rsl_rl's algorithm does not take, naming the valid keys.

    Args:
        algorithm: The algorithm's class name, for the message.
        keys: The keyword arguments the algorithm passes on to rsl_rl's constructor.
        own: dagmix's keys of the algorithm (its own arguments).
        parent: rsl_rl's algorithm class.
        valid: The keys ``parent`` takes.
    """
    valid = sorted(valid)
    for key in keys:
        if key not in valid:
            raise ValueError(
                f"Unknown algorithm key {key!r} for {algorithm}; its keys are {', '.join(own)} and rsl_rl's "
                f"{parent.__name__} keys ({', '.join(valid)})." + did_you_mean(key, [*own, *valid], cutoff=0.7)
            )


def _call(callback: IterationCallback, iteration: int, metrics: dict[str, float], losses: dict[str, float]) -> Any:
    """Call an iteration callback with the loss dict if it takes a third positional argument."""
    try:
        inspect.signature(callback).bind(iteration, metrics, losses)
    except (TypeError, ValueError):
        return callback(iteration, metrics)
    return callback(iteration, metrics, losses)


class MixingCore:
    """Who drives, per iteration: the beta schedule, the per-env mask and the runner's iteration numbering.

    Attributes:
        cfg: The mixing configuration.
        schedule: The beta schedule.
        policy: The per-env mask (``teacher_mask``: bool, shape (num_envs,), on the env's device).
        iteration: The runner iteration of the current (or next) rollout.
        beta: The current iteration's beta (set by :meth:`begin_iteration`).
        phase: The current iteration's training phase (1 or 2).
        max_iterations: The run's ``max_iterations`` (see :meth:`configure_run`).
        callbacks: Called as ``fn(iteration, metrics)``, or ``fn(iteration, metrics, losses)`` with rsl_rl's loss
            dict of the update, at the end of each update; a returned mapping of scalars is logged with the
            iteration's metrics (e.g. ``Eval/student_return``).
        last_metrics: The scalars logged for the latest iteration.
        last_losses: rsl_rl's loss dict of the latest update.
        extras_log: Writes the scalars into the env's extras, where rsl_rl's logger reads them.
    """

    def __init__(
        self,
        cfg: MixingConfig,
        num_envs: int,
        device: str | torch.device,
        *,
        console: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Build the schedule of ``cfg`` and the mask for ``num_envs`` envs on ``device``.

        Args:
            cfg: The mixing configuration (schedule, granularity, assignment, seed).
            num_envs: Number of parallel envs.
            device: The env's device.
            console: Print the phase lines and the switch banner (rank 0 only).
            rank: rsl_rl's ``gpu_global_rank``.
            world_size: rsl_rl's ``gpu_world_size``.
        """
        self.cfg: MixingConfig = cfg
        self.schedule: BetaSchedule = cfg.build_schedule()
        self.console = console and rank == 0
        self._device, self._rank, self._world_size = device, rank, world_size
        seed = self._rank_seed(cfg.seed) if cfg.seed is not None else reseed_value(0, 0)
        self.policy = MixingPolicy(num_envs, device, granularity=cfg.granularity, assignment=cfg.assignment, seed=seed)
        self.max_iterations: int | None = None
        self._run_length: int | None = None  # the next learn() call's length (MixingDistillationRunner tells it)
        self.iteration = 0  # iteration of the current / next rollout (the runner's `it`)
        self._runner_iteration = 0  # mirrors the runner's current_learning_iteration
        self.pending = True  # the next rollout step starts an iteration
        self.beta, self.phase = 0.0, 2
        self._forced_phase2_from: int | None = None
        self._seen_positive_beta = False
        self._banner_printed = False
        self.extras_log = ExtrasLog()
        self.callbacks: list[IterationCallback] = []
        self.last_metrics: dict[str, float] = {}
        self.last_losses: dict[str, float] = {}

    # ------------------------------------------------------------------ the run
    def configure_run(self, max_iterations: int | None = None, seed: int | None = None) -> None:
        """Set the run length and derive the mask seed from the run's seed (unless ``mixing.seed`` is set)."""
        if max_iterations is not None:
            self.max_iterations = int(max_iterations)
        if self.cfg.seed is None and seed is not None:
            self.policy.seed = reseed_value(self._rank_seed(int(seed)), 0)
            self.policy.generator.manual_seed(self.policy.seed)

    def _rank_seed(self, base: int) -> int:
        """Return ``base`` made distinct per rank, offsetting by the rank at most once.

        Launchers such as Isaac Lab's train script already add the rank to the run's seed; where the ranks'
        seeds already differ they are kept, and where they coincide (e.g. an explicit ``mixing.seed``), the
        global rank is added. Without a process group the rank is added.
        """
        if self._world_size == 1:  # one process (rsl_rl's world size is 1 without multi_gpu_cfg)
            return base
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return base + self._rank
        mine = torch.tensor([base], dtype=torch.int64, device=self._device)
        everyone = [torch.zeros_like(mine) for _ in range(self._world_size)]
        dist.all_gather(everyone, mine)
        seeds = [int(t.item()) for t in everyone]
        return base if len(set(seeds)) == len(seeds) else base + self._rank

    def sync_iteration(self, iteration: int, num_learning_iterations: int | None = None) -> None:
        """Align with the runner's iteration before ``learn`` (MixingDistillationRunner calls this)."""
        self._runner_iteration = self.iteration = int(iteration)
        self.pending = True
        if num_learning_iterations is not None:
            self._run_length = int(num_learning_iterations)

    def start_learning(self) -> int | None:
        """Resync with the runner at the start of ``learn``; warn if the switch lies beyond the run's end.

        Returns:
            The length of this ``learn`` call if known, else the run's ``max_iterations`` (None if neither is).
        """
        self.iteration = self._runner_iteration
        self.pending = True
        length = self._run_length or self.max_iterations
        message = switch_beyond_end(self.iteration, length, self.switch_iteration())
        if message:
            warnings.warn(message, stacklevel=3)
        self._run_length = None
        return length

    # ------------------------------------------------------------------ beta and phase
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

    def switch_iteration(self) -> int | None:
        """Return the first iteration with beta 0 (the schedule's or the forced one), None if unknown."""
        zero = self.schedule.first_zero_iteration()
        if self._forced_phase2_from is not None:
            zero = self._forced_phase2_from if zero is None else min(zero, self._forced_phase2_from)
        return zero

    def phase_info(self) -> dict[str, Any]:
        """Return the current phase, iteration, beta and schedule (the two-stage patch's helper)."""
        it = self.iteration
        return {
            "training_phase": self.phase_at(it),
            "current_iteration": it,
            "beta": self.beta_at(it),
            "phase1_iterations": self.schedule.phase1_iterations,
            "switch_iteration": self.switch_iteration(),
            "schedule": self.schedule.describe(),
        }

    def switch_to_phase2(self) -> None:
        """Force beta = 0 from the next iteration on (the two-stage patch's helper); persists in checkpoints."""
        start = self.iteration if self.pending else self.iteration + 1
        if self._forced_phase2_from is None or start < self._forced_phase2_from:
            self._forced_phase2_from = start

    # ------------------------------------------------------------------ per iteration
    def begin_iteration(self) -> float:
        """Start the current iteration: set its beta and phase, draw the mask, print the banner; return beta."""
        it = self.iteration
        beta = self.beta_at(it)
        self.policy.begin_iteration(beta, it)
        self.beta, self.phase = beta, self.phase_at(it)  # before observe(): adaptive schedules then move on
        self.pending = False
        if beta > 0.0:  # the switch banner: once, at the first iteration with beta 0 after one with beta > 0
            self._seen_positive_beta = True
        elif self._seen_positive_beta and not self._banner_printed:
            self._banner_printed = True
            if self.console:
                print(switch_banner(it))
        return beta

    def on_env_step(self, dones: torch.Tensor, extras: dict[str, Any]) -> None:
        """Renew episode-level draws of finished envs and note where this step's extras take the scalars."""
        self.policy.on_dones(dones)
        self.extras_log.note(extras)

    def end_iteration(self, metrics: dict[str, float], losses: dict[str, float], *console_lines: str) -> None:
        """Finish the iteration: run the callbacks, log ``metrics``, print the phase lines, move to the next one.

        Args:
            metrics: The iteration's scalars (extended by what the callbacks return).
            losses: rsl_rl's loss dict of the update (handed to the callbacks).
            *console_lines: Lines printed after the phase lines.
        """
        it = self.iteration
        for callback in self.callbacks:
            extra = _call(callback, it, dict(metrics), losses)
            if extra:
                metrics.update(extra)
        self.last_metrics, self.last_losses = metrics, losses
        self.extras_log.write(metrics)
        if self.console:
            print("\n".join([*phase_lines(self.schedule, it, self.beta), *console_lines]))
        self._runner_iteration = it
        self.iteration = it + 1
        self.pending = True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, **extra: Any) -> dict[str, Any]:
        """Return the mixing state stored under ``checkpoint["dagmix"]``, with the algorithm's ``extra`` entries."""
        return {
            "format_version": MIXING_STATE_FORMAT_VERSION,
            "dagmix_version": __version__,
            "mixing": self.cfg.to_dict(),
            "schedule": self.schedule.describe(),
            "schedule_state": self.schedule.state_dict(),
            "policy": self.policy.state_dict(),
            "forced_phase2_from": self._forced_phase2_from,
            **extra,
        }

    def resume(
        self,
        state: Mapping[str, Any] | None,
        iteration: int,
        algorithm: str | None = None,
        configured: Mapping[str, str] | None = None,
    ) -> None:
        """Resume at a checkpoint's ``iteration`` from its :meth:`state_dict` output ``state``.

        A different schedule or mask configuration is used as configured, with a warning naming what changed.
        Without a state (a checkpoint of stock rsl_rl), the generator is re-seeded from (seed, iteration), with a
        warning.

        Args:
            state: The checkpoint's ``checkpoint["dagmix"]``, or None.
            iteration: The iteration the run resumes at.
            algorithm: The ``algorithm`` entry the state must have (None: none, as MixingDistillation writes).
            configured: Descriptions of the algorithm's other schedules (``{"ppo_coef": "0.5", ...}``), compared
                with the checkpoint's.
        """
        self._runner_iteration = self.iteration = int(iteration)
        self.pending = True
        if state is None:
            warnings.warn(
                f"The checkpoint has no dagmix mixing state (saved by stock rsl_rl?); re-seeding the mask "
                f"generator from (seed={self.policy.seed}, iteration={iteration}).",
                stacklevel=3,
            )
            self.policy.reseed(iteration)
            return
        if state.get("algorithm") != algorithm:
            raise ValueError(
                f"checkpoint['{CHECKPOINT_KEY}'] was not written by {algorithm or 'MixingDistillation'} (algorithm="
                f"{state.get('algorithm')!r}); resume it with the algorithm that wrote it."
            )
        version = state.get("format_version")
        if not isinstance(version, int) or version > MIXING_STATE_FORMAT_VERSION:
            raise ValueError(
                f"Checkpoint mixing state has format_version={version!r}; this dagmix reads versions up to "
                f"{MIXING_STATE_FORMAT_VERSION}. Upgrade dagmix to resume this run."
            )
        for key, now in {"schedule": self.schedule.describe(), **(configured or {})}.items():
            if state.get(key) != now:
                warnings.warn(
                    f"The checkpoint was trained with {key} {state.get(key)}; this run uses {now}. Continuing with "
                    "the configured one.",
                    stacklevel=3,
                )
        if state.get("schedule") == self.schedule.describe():
            self.schedule.load_state_dict(state.get("schedule_state", {}))
        self._forced_phase2_from = state.get("forced_phase2_from")
        saved, seed = state["policy"], self.policy.seed
        changed: dict[str, tuple[Any, Any]] = {}
        if saved.get("granularity") != self.cfg.granularity:
            changed["granularity"] = (saved.get("granularity"), self.cfg.granularity)
        if state.get("mixing", {}).get("seed") != self.cfg.seed or (
            self._world_size == 1 and saved.get("seed") != seed  # a derived seed (from the run's seed) changed
        ):
            changed["seed"] = (saved.get("seed"), seed)
        if changed:
            warnings.warn(
                "The checkpoint's mask was drawn with "
                + ", ".join(f"mixing {k}={old!r}" for k, (old, _) in changed.items())
                + "; this run uses "
                + ", ".join(f"{k}={new!r}" for k, (_, new) in changed.items())
                + ". Continuing with the configured values (the masks differ from an uninterrupted run).",
                stacklevel=3,
            )
        self.policy.load_state_dict(saved)
        if "seed" in changed:  # the configured seed, re-seeded deterministically from (seed, iteration)
            self.policy.seed = seed
            self.policy.reseed(iteration)


def _forward(name: str) -> property:
    """Return a read-only property that reads ``mixing_core.<name>``."""
    return property(lambda self: getattr(self.mixing_core, name), doc=f"``mixing_core.{name}``.")


class MixingSurface:
    """The public surface both algorithms give their :class:`MixingCore` (``mixing_core``), forwarded to it."""

    mixing_core: MixingCore
    device: str | torch.device  # set by the rsl_rl algorithm the surface is mixed into
    gpu_global_rank: int
    gpu_world_size: int
    mixing_cfg = _forward("cfg")
    mixing_policy = _forward("policy")
    beta_schedule = _forward("schedule")
    iteration = _forward("iteration")
    iteration_callbacks = _forward("callbacks")
    last_metrics = _forward("last_metrics")
    last_losses = _forward("last_losses")
    extras_log = _forward("extras_log")

    lr_schedule: LearningRateScheduleConfig  # the algorithm's learning-rate schedule (set in its __init__)
    _base_learning_rate: float  # the configured rate the schedule starts from
    _lr_end: int | None = None  # iteration at which a decaying schedule reaches min_learning_rate

    def start_learning(self) -> None:
        """Resync the mixing core at the start of ``learn`` and resolve the end of a decaying learning rate."""
        length = self.mixing_core.start_learning()
        self._lr_end = self.lr_schedule.end_iteration(self.mixing_core.iteration, length)

    def _set_learning_rate(self) -> None:
        """Set the optimizer's learning rate for this iteration's update (untouched for a constant schedule)."""
        if self.lr_schedule.active:
            if self.lr_schedule.decays and self._lr_end is None:  # update() without learn(): resolve as learn() does
                self._lr_end = self.lr_schedule.end_iteration(self.iteration, self.mixing_core.max_iterations)
            lr = self.lr_schedule.apply(self.optimizer, self._base_learning_rate, self.iteration, self._lr_end)
            self.learning_rate = lr  # rsl_rl's logger reads it (Loss/learning_rate)

    def build_mixing_core(self, cfg: MixingConfig, num_envs: int, console: bool) -> MixingCore:
        """Return the :class:`MixingCore` of this algorithm's device and process group (rsl_rl's attributes)."""
        return MixingCore(
            cfg, num_envs, self.device, console=console, rank=self.gpu_global_rank, world_size=self.gpu_world_size
        )

    def describe(self) -> str:
        """Return the one-line summary of the settings that ``dagmix distill`` prints."""
        return f"mixing: {self.beta_schedule.describe()}, granularity={self.mixing_cfg.granularity}"

    def configure_run(self, max_iterations: int | None = None, seed: int | None = None) -> None:
        """See :meth:`MixingCore.configure_run`."""
        self.mixing_core.configure_run(max_iterations, seed)

    def sync_iteration(self, iteration: int, num_learning_iterations: int | None = None) -> None:
        """See :meth:`MixingCore.sync_iteration`."""
        self.mixing_core.sync_iteration(iteration, num_learning_iterations)

    def beta_at(self, iteration: int) -> float:
        """See :meth:`MixingCore.beta_at`."""
        return self.mixing_core.beta_at(iteration)

    def phase_at(self, iteration: int) -> int:
        """See :meth:`MixingCore.phase_at`."""
        return self.mixing_core.phase_at(iteration)

    def get_training_phase_info(self) -> dict[str, Any]:
        """See :meth:`MixingCore.phase_info`."""
        return self.mixing_core.phase_info()

    def switch_to_phase2(self) -> None:
        """See :meth:`MixingCore.switch_to_phase2`."""
        self.mixing_core.switch_to_phase2()
