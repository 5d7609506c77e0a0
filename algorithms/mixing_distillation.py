"""MixingDistillation: rsl_rl's Distillation with a per-env teacher/student beta-mixing schedule."""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from rsl_rl.algorithms import Distillation
from tensordict import TensorDict

from dagmix.algorithms import _compat
from dagmix.algorithms.phase_log import (
    SCALAR_BETA,
    SCALAR_CURRENT_ITERATION,
    SCALAR_LOSS_STUDENT_DRIVEN,
    SCALAR_LOSS_TEACHER_DRIVEN,
    SCALAR_TEACHER_FRACTION,
    SCALAR_TRAINING_PHASE,
    phase_lines,
    switch_banner,
)
from dagmix.mixing.config import MixingConfig
from dagmix.mixing.policy import MixingPolicy, reseed_value
from dagmix.mixing.schedules import BetaSchedule, StepSchedule

_compat.check_rsl_rl_version()

MIXING_STATE_FORMAT_VERSION = 1
"""Version of the ``checkpoint["dagmix"]`` layout; bumped on incompatible changes."""

CHECKPOINT_KEY = "dagmix"
"""Key of the mixing state in rsl_rl checkpoints (ignored by stock rsl_rl when loading)."""

_DAGMIX_KEYS = ("mixing", "use_two_stage_training", "phase1_iterations", "phase_console_output", "teacher_action_clip")
_PARENT_KEYS = set(inspect.signature(Distillation.__init__).parameters) | {"rnd_cfg", "symmetry_cfg"}


class _SplitLoss:
    """Wraps the behaviour loss; also sums it per sample on teacher- and student-driven steps (on the device)."""

    def __init__(self, fn: Any, device: str) -> None:
        self.fn = fn
        self.sums = torch.zeros(4, device=device)  # loss teacher-driven, count, loss student-driven, count
        self.mask: torch.Tensor | None = None
        self.index = 0

    def begin(self, mask: torch.Tensor) -> None:
        self.mask, self.index = mask, 0
        self.sums.zero_()

    def end(self) -> None:
        self.mask = None

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = self.fn(pred, target, *args, **kwargs)
        if self.mask is not None:
            with torch.no_grad():
                per = self.fn(pred.detach().float(), target.float(), reduction="none")
                per = per.reshape(per.shape[0], -1).mean(-1)
                m = self.mask[self.index % self.mask.shape[0]].to(per.dtype)
                on_t = (per * m).sum()
                self.sums += torch.stack([on_t, m.sum(), per.sum() - on_t, m.numel() - m.sum()])
            self.index += 1
        return loss


def _resolve_mixing(
    mixing: Mapping[str, Any] | MixingConfig | None, use_two_stage_training: bool, phase1_iterations: int | None
) -> MixingConfig:
    """Turn the algorithm config's mixing keys into a validated MixingConfig (the one conversion point)."""
    if use_two_stage_training not in (True, False):
        raise ValueError(f"use_two_stage_training={use_two_stage_training!r} must be True or False.")
    if use_two_stage_training:
        if mixing:
            raise ValueError(
                "Both a non-empty 'mixing' and use_two_stage_training=True were given; they configure the same "
                "thing. Keep one: mixing={'schedule': 'two_stage', 'phase1_iterations': N} or the seed's "
                "use_two_stage_training=True with phase1_iterations=N."
            )
        if phase1_iterations is None:
            raise ValueError("use_two_stage_training=True needs phase1_iterations (e.g. phase1_iterations=500).")
        return MixingConfig.from_dict({"schedule": "two_stage", "phase1_iterations": phase1_iterations})
    if not mixing:
        return MixingConfig(schedule="student_only")
    return MixingConfig.from_dict(mixing)


class MixingDistillation(_compat.DistillationBase):
    """Distillation where, per env and step, the teacher's action is executed with probability beta.

    The student and the teacher run on every step; the student is trained on the teacher's action for every
    visited state. Beta comes from a :class:`~dagmix.mixing.BetaSchedule` of the runner's 0-based iteration.

    Attributes:
        mixing_policy: The per-env mask (``teacher_mask``: bool, shape (num_envs,), on the env's device).
        schedule: The beta schedule.
        executed_actions: Tensor, shape (num_steps_per_env, num_envs, num_actions): actions sent to the env.
        teacher_masks: Bool tensor, shape (num_steps_per_env, num_envs): True where the teacher drove.
    """

    def __init__(
        self,
        *models: Any,
        mixing: Mapping[str, Any] | MixingConfig | None = None,
        use_two_stage_training: bool = False,
        phase1_iterations: int | None = None,
        phase_console_output: bool = True,
        teacher_action_clip: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the algorithm; rsl_rl's own keys (``learning_rate``, ...) pass through to ``Distillation``.

        Args:
            *models: rsl_rl's positional arguments: ``(student, teacher, storage)`` on rsl-rl 4.x/5.x (models such
                as MLPModel / RNNModel and a ``distillation`` RolloutStorage), ``(policy, storage)`` on 3.x (one
                StudentTeacher module).
            mixing: Flat mixing dict, e.g. ``{"schedule": "linear", "iterations": 300, "granularity": "episode"}``.
            use_two_stage_training: The seed's switch; with ``phase1_iterations`` it means schedule ``two_stage``.
            phase1_iterations: Teacher-driven iterations; read only when ``use_two_stage_training`` is True.
            phase_console_output: Print the phase lines and the switch banner (rank 0 only).
            teacher_action_clip: If set, the stored label (the teacher action the student learns) is clamped to
                [-clip, clip], e.g. to the env's action bounds; the executed action is not changed (the env
                clamps what it receives). None (default) stores the raw teacher action, as rsl_rl does.
            **kwargs: Passed to rsl_rl's ``Distillation``.
        """
        for key in kwargs:
            if key not in _PARENT_KEYS:
                close = difflib.get_close_matches(key, _DAGMIX_KEYS, n=1, cutoff=0.75)
                if close:
                    raise ValueError(f"Unknown algorithm key {key!r}; did you mean {close[0]!r}?")
                warnings.warn(f"MixingDistillation ignores unknown algorithm key {key!r}.", stacklevel=2)
        self.mixing_cfg = _resolve_mixing(mixing, use_two_stage_training, phase1_iterations)
        if teacher_action_clip is not None and (
            isinstance(teacher_action_clip, bool)
            or not isinstance(teacher_action_clip, (int, float))
            or not teacher_action_clip > 0
        ):
            raise ValueError(f"teacher_action_clip={teacher_action_clip!r} must be a positive number or None.")
        self.teacher_action_clip = None if teacher_action_clip is None else float(teacher_action_clip)
        super().__init__(*models, **kwargs)
        storage = self.storage
        self.schedule: BetaSchedule = self.mixing_cfg.build_schedule()
        self.phase_console_output = bool(phase_console_output)

        num_envs, steps = storage.num_envs, storage.num_transitions_per_env
        num_actions = storage.privileged_actions.shape[-1]
        self.mixing_policy = MixingPolicy(
            num_envs,
            self.device,
            granularity=self.mixing_cfg.granularity,
            assignment=self.mixing_cfg.assignment,
            seed=self.mixing_cfg.seed if self.mixing_cfg.seed is not None else reseed_value(0, 0),
        )
        self.teacher_masks = torch.zeros(steps, num_envs, dtype=torch.bool, device=self.device)
        self.executed_actions = torch.zeros(steps, num_envs, num_actions, device=self.device)
        self.loss_fn = _SplitLoss(self.loss_fn, self.device)

        self.max_iterations: int | None = None
        self._run_length: int | None = None
        self._iteration = 0  # iteration of the current / next rollout (the runner's `it`)
        self._runner_iteration = 0  # mirrors the runner's current_learning_iteration
        self._pending = True  # the next act() starts an iteration
        self._beta = 0.0
        self._forced_phase2_from: int | None = None
        self._seen_positive_beta = False
        self._banner_printed = False
        self._log_target: dict | None = None
        self._logged_keys: set[str] = set()
        self.last_metrics: dict[str, float] = {}
        self.iteration_callbacks: list[Callable[[int, dict[str, float]], Mapping[str, float] | None]] = []
        """Called as ``fn(iteration, metrics)`` at the end of each update (after the student's gradient steps);
        a returned mapping of scalars is logged with the iteration's metrics (e.g. ``Eval/student_return``)."""

    # ------------------------------------------------------------------ construction
    @staticmethod
    def construct_algorithm(obs: TensorDict, env: Any, cfg: dict, device: str) -> MixingDistillation:
        """Construct through rsl_rl's own path, then read the run's ``max_iterations`` and ``seed``."""
        alg = Distillation.construct_algorithm(obs, env, cfg, device)
        if not isinstance(alg, MixingDistillation):  # pragma: no cover - class_name names another class
            raise TypeError(f"algorithm.class_name resolved to {type(alg).__name__}, not MixingDistillation.")
        alg.configure_run(max_iterations=cfg.get("max_iterations"), seed=cfg.get("seed"))
        return alg

    def configure_run(self, max_iterations: int | None = None, seed: int | None = None) -> None:
        """Set the run length (for the switch-beyond-end warning) and derive the mask seed from the run's seed."""
        if max_iterations is not None:
            self.max_iterations = int(max_iterations)
        if self.mixing_cfg.seed is None and seed is not None:
            self.mixing_policy.seed = reseed_value(int(seed), 0)
            self.mixing_policy.generator.manual_seed(self.mixing_policy.seed)

    # ------------------------------------------------------------------ schedule
    def beta_at(self, iteration: int) -> float:
        """Return the effective beta at ``iteration`` (the schedule, or 0 after :meth:`switch_to_phase2`)."""
        if self._forced_phase2_from is not None and iteration >= self._forced_phase2_from:
            return 0.0
        return self.schedule.beta(iteration)

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
        switch = self._switch_iteration()
        if length is None or switch is None or switch <= self._iteration:
            return
        end = self._iteration + length
        if switch >= end:
            warnings.warn(
                f"The student takes over (beta = 0) at iteration {switch}, but this run ends after iteration "
                f"{end - 1} (it starts at {self._iteration} and runs {length} iterations): phase 2 is not reached "
                "in this run. That is fine when you resume in chunks; otherwise lower the switch or raise "
                "max_iterations.",
                stacklevel=3,
            )

    def _begin_iteration(self) -> None:
        it = self._iteration
        beta = self.beta_at(it)
        self.mixing_policy.begin_iteration(beta, it)
        self._beta = beta
        self._pending = False
        if beta > 0.0:
            self._seen_positive_beta = True
        elif self._seen_positive_beta and not self._banner_printed:
            self._banner_printed = True
            if self._console:
                print(switch_banner(it))

    @property
    def _console(self) -> bool:
        return self.phase_console_output and self.gpu_global_rank == 0

    # ------------------------------------------------------------------ rsl_rl hooks
    def train_mode(self) -> None:
        """Set train mode; as rsl_rl's runners call this at the start of ``learn``, also resync the iteration."""
        super().train_mode()
        if not self.teacher_loaded:
            raise ValueError(
                "Teacher model parameters not loaded. Load a teacher checkpoint (runner.load(path)) before learn()."
            )
        self._iteration = self._runner_iteration
        self._pending = True
        self._warn_if_switch_beyond_end()
        self._run_length = None

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Run student and teacher for every env; return the mixed action (teacher where the mask is set)."""
        if self._pending:
            self._begin_iteration()
        student_actions = super().act(obs)
        teacher_actions = self.transition.privileged_actions
        if self.teacher_action_clip is not None:
            clip = self.teacher_action_clip
            self.transition.privileged_actions = teacher_actions.clamp(-clip, clip)
        mask = self.mixing_policy.step()
        executed = self.mixing_policy.select(student_actions, teacher_actions)
        step = self.storage.step
        if step < self.teacher_masks.shape[0]:
            self.teacher_masks[step].copy_(mask)
            self.executed_actions[step].copy_(executed)
        return executed

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]
    ) -> None:
        """Record the step, renew episode-level draws of finished envs, and note where to log scalars."""
        self.mixing_policy.on_dones(dones)
        if self.storage.step == 0:  # the rollout's first extras: rsl_rl < 5.4 logs only the keys of that one
            self._log_target = extras["episode"] if "episode" in extras else extras.setdefault("log", {})
        super().process_env_step(obs, rewards, dones, extras)

    def update(self) -> dict[str, float]:
        """Train the student on all visited states; compute, log and print this iteration's mixing metrics."""
        filled = max(1, min(self.storage.step, self.teacher_masks.shape[0]))
        self.loss_fn.begin(self.teacher_masks)
        try:
            loss_dict = super().update()
        finally:
            self.loss_fn.end()
        frac = self.teacher_masks[:filled].float().mean()
        # the only device-to-host read of the iteration
        frac_value, loss_t, cnt_t, loss_s, cnt_s = torch.cat([frac.view(1), self.loss_fn.sums]).tolist()
        it, beta = self._iteration, self._beta
        metrics = {
            SCALAR_TRAINING_PHASE: 1.0 if beta > 0.0 else 2.0,
            SCALAR_CURRENT_ITERATION: float(it),
            SCALAR_BETA: beta,
            SCALAR_TEACHER_FRACTION: frac_value,
        }
        if cnt_t > 0:
            metrics[SCALAR_LOSS_TEACHER_DRIVEN] = loss_t / cnt_t
        if cnt_s > 0:
            metrics[SCALAR_LOSS_STUDENT_DRIVEN] = loss_s / cnt_s
        for callback in self.iteration_callbacks:
            extra = callback(it, dict(metrics))
            if extra:
                metrics.update(extra)
        self.last_metrics = metrics
        if self._log_target is not None:
            for key in self._logged_keys - metrics.keys():  # keys an env-reused dict may still hold
                self._log_target.pop(key, None)
            self._log_target.update(metrics)
            self._logged_keys = set(metrics)
        if self._console:
            print("\n".join(phase_lines(self.schedule, it, beta)))
        self._runner_iteration = it
        self._iteration = it + 1
        self._pending = True
        return loss_dict

    # ------------------------------------------------------------------ seed helpers
    def get_training_phase_info(self) -> dict[str, Any]:
        """Return the current phase, iteration, beta and schedule (the seed's helper)."""
        it = self._iteration
        beta = self.beta_at(it)
        return {
            "training_phase": 1 if beta > 0.0 else 2,
            "current_iteration": it,
            "beta": beta,
            "phase1_iterations": self.schedule.phase1_iterations if isinstance(self.schedule, StepSchedule) else None,
            "switch_iteration": self._switch_iteration(),
            "schedule": self.schedule.describe(),
        }

    def switch_to_phase2(self) -> None:
        """Force beta = 0 from the next iteration on (the seed's helper); persists in checkpoints."""
        start = self._iteration if self._pending else self._iteration + 1
        if self._forced_phase2_from is None or start < self._forced_phase2_from:
            self._forced_phase2_from = start

    # ------------------------------------------------------------------ checkpoints
    def mixing_state_dict(self) -> dict[str, Any]:
        """Return the mixing state stored under ``checkpoint["dagmix"]``."""
        from dagmix import __version__

        return {
            "format_version": MIXING_STATE_FORMAT_VERSION,
            "dagmix_version": __version__,
            "mixing": self.mixing_cfg.to_dict(),
            "schedule": self.schedule.describe(),
            "schedule_state": self.schedule.state_dict(),
            "policy": self.mixing_policy.state_dict(),
            "forced_phase2_from": self._forced_phase2_from,
        }

    def load_mixing_state(self, state: Mapping[str, Any], iteration: int) -> None:
        """Restore :meth:`mixing_state_dict` output for a run resuming at ``iteration``."""
        version = state.get("format_version")
        if not isinstance(version, int) or version > MIXING_STATE_FORMAT_VERSION:
            raise ValueError(
                f"Checkpoint mixing state has format_version={version!r}; this dagmix reads versions up to "
                f"{MIXING_STATE_FORMAT_VERSION}. Upgrade dagmix to resume this run."
            )
        if state["schedule"] != self.schedule.describe():
            warnings.warn(
                f"The checkpoint was trained with {state['schedule']}; this run uses {self.schedule.describe()}. "
                "Continuing with the configured schedule.",
                stacklevel=3,
            )
        else:
            self.schedule.load_state_dict(state["schedule_state"])
        self._forced_phase2_from = state.get("forced_phase2_from")
        self.mixing_policy.load_state_dict(state["policy"])

    def save(self) -> dict:
        """Return rsl_rl's checkpoint dict plus the mixing state under ``"dagmix"``."""
        saved = super().save()
        saved[CHECKPOINT_KEY] = self.mixing_state_dict()
        return saved

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Load as rsl_rl does; when the iteration is resumed, also resume the schedule and the mask generator."""
        load_iteration = super().load(loaded_dict, load_cfg, strict)
        if load_iteration:
            it = int(loaded_dict["iter"])
            self._runner_iteration = self._iteration = it
            self._pending = True
            state = loaded_dict.get(CHECKPOINT_KEY)
            if state is None:
                warnings.warn(
                    f"The checkpoint has no dagmix mixing state (saved by stock rsl_rl?); re-seeding the mask "
                    f"generator from (seed={self.mixing_policy.seed}, iteration={it}).",
                    stacklevel=2,
                )
                self.mixing_policy.reseed(it)
            else:
                self.load_mixing_state(state, it)
        return load_iteration
