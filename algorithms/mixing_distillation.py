"""MixingDistillation: rsl_rl's Distillation with a per-env teacher/student beta-mixing schedule."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from rsl_rl.algorithms import Distillation
from tensordict import TensorDict

from dagmix.algorithms import checkpoint_io, compat
from dagmix.algorithms.ema import WeightAverage, loads_student, restore_student
from dagmix.algorithms.episode_returns import EpisodeReturns
from dagmix.algorithms.expert_stats import ExpertStats
from dagmix.algorithms.finite_guard import check_finite, check_loss, check_student_weights
from dagmix.algorithms.iteration_stats import IterationStats
from dagmix.algorithms.loss_weighting import SplitLoss, WhoDroveWeights
from dagmix.algorithms.mixing_core import (
    CHECKPOINT_KEY,
    MIXING_STATE_FORMAT_VERSION,
    MixingSurface,
    check_algorithm_keys,
)
from dagmix.algorithms.phase_log import (
    SCALAR_BETA,
    SCALAR_CURRENT_ITERATION,
    SCALAR_ESTIMATOR_LOSS,
    SCALAR_LOSS_STUDENT_DRIVEN,
    SCALAR_LOSS_TEACHER_DRIVEN,
    SCALAR_TEACHER_FRACTION,
    SCALAR_TRAINING_PHASE,
)
from dagmix.algorithms.replay import AggregationReplay
from dagmix.algorithms.schedule_signals import add_label_moments, compute_signal
from dagmix.mixing.config import MixingConfig
from dagmix.mixing.options import LossWeighting, ReplayConfig
from dagmix.mixing.schema import ALGORITHM_KEYS, validate

compat.check_rsl_rl_version()

__all__ = ["CHECKPOINT_KEY", "MIXING_STATE_FORMAT_VERSION", "MixingDistillation"]

SCALAR_REPLAY_LOSS = "Distillation/replay_loss"
SCALAR_LEARNING_RATE = "Distillation/learning_rate"
_PARENT_KEYS = set(inspect.signature(Distillation.__init__).parameters) - {"self"} | {"rnd_cfg", "symmetry_cfg"}


class MixingDistillation(MixingSurface, compat.DistillationBase):
    """Distillation where, per env and step, the teacher's action is executed with probability beta.

    The student and the teacher run on every step; the student is trained on the teacher's action for every
    visited state. Beta comes from a :class:`~dagmix.mixing.BetaSchedule` of the runner's 0-based iteration.

    Attributes:
        mixing_core: The mixing state (:class:`~dagmix.algorithms.mixing_core.MixingCore`): mask, schedule,
            iteration, callbacks; its public surface is forwarded (``mixing_policy``, ``iteration``, ...).
        schedule: The beta schedule.
        executed_actions: Tensor, shape (num_steps_per_env, num_envs, num_actions): actions sent to the env.
        teacher_masks: Bool tensor, shape (num_steps_per_env, num_envs): True where the teacher drove.
    """

    schedule = MixingSurface.beta_schedule  # the two-stage patch's name

    def __init__(
        self,
        *models: Any,
        mixing: Mapping[str, Any] | MixingConfig | None = None,
        use_two_stage_training: bool | None = None,
        phase1_iterations: int | None = None,
        phase_console_output: bool = True,
        teacher_action_clip: float | None = None,
        loss_weighting: Mapping[str, Any] | LossWeighting | None = None,
        replay: Mapping[str, Any] | ReplayConfig | None = None,
        learning_rate_schedule: str = "constant",
        min_learning_rate: float = 0.0,
        warmup_iterations: int = 0,
        learning_rate_iterations: int | None = None,
        learning_rate_decay_start_fraction: float = 0.0,
        ema_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the algorithm; rsl_rl's own keys (``learning_rate``, ...) pass through to ``Distillation``.

        ``models`` are rsl_rl's positional arguments: ``(student, teacher, storage)`` on rsl-rl 4.x/5.x (models such
        as MLPModel / RNNModel and a ``distillation`` RolloutStorage), ``(policy, storage)`` on 3.x (one
        StudentTeacher module). The keywords before ``**kwargs`` are dagmix's keys, each declared and documented
        once in :mod:`dagmix.mixing.schema` (``docs/config.md``); ``**kwargs`` go to rsl_rl's ``Distillation``
        (e.g. ``multi_gpu_cfg``).
        """
        check_algorithm_keys("MixingDistillation", kwargs, ALGORITHM_KEYS, Distillation, _PARENT_KEYS)
        for key in ("num_learning_epochs", "gradient_length"):  # rsl_rl divides by them (mid-run for the epochs)
            value = kwargs.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} must be an integer >= 1.")
        options = validate({k: v for k, v in locals().items() if k in ALGORITHM_KEYS})  # the dagmix keys above
        self.teacher_action_clip = options.teacher_action_clip
        self.loss_weighting, self.replay_cfg = options.loss_weighting, options.replay
        self.lr_schedule, self.ema_cfg = options.lr_schedule, options.ema
        super().__init__(*models, **kwargs)
        storage = self.storage
        self._base_learning_rate = self.lr_schedule.check_base(self.optimizer.param_groups[0]["lr"])
        self.ema = WeightAverage.attach(self.ema_cfg, compat.raw_student(self), self.optimizer)

        num_envs, steps = storage.num_envs, storage.num_transitions_per_env
        num_actions = storage.privileged_actions.shape[-1]
        self.mixing_core = self.build_mixing_core(options.mixing, num_envs, options.phase_console_output)
        self.teacher_masks = torch.zeros(steps, num_envs, dtype=torch.bool, device=self.device)
        self.executed_actions = torch.zeros(steps, num_envs, num_actions, device=self.device)
        self.loss_fn = SplitLoss(self.loss_fn, self.device)
        self._step_mask = self.mixing_policy.teacher_mask
        # optional extensions, built only when configured (no cost otherwise)
        self.episode_returns = EpisodeReturns(num_envs, self.device) if self.schedule.signal == "return_ratio" else None
        self.loss_weights = (
            WhoDroveWeights(self.loss_weighting, steps, num_envs, self.device) if self.loss_weighting.active else None
        )
        self.replay: AggregationReplay | None = None
        if self.replay_cfg.active:
            self.replay = AggregationReplay(
                self.replay_cfg,
                compat.raw_student(self),
                storage,
                self.optimizer,
                self.loss_fn.fn,
                seed=self.mixing_policy.seed + 1,
                num_learning_epochs=self.num_learning_epochs,
                gradient_length=self.gradient_length,
                max_grad_norm=self.max_grad_norm,
                reduce_gradients=self.reduce_parameters if self.is_multi_gpu else None,
                mixed_precision=bool(getattr(self, "use_mixed_precision", False)),  # rsl-rl-lib >= 5.5 only
            )
            if self.gpu_global_rank == 0:
                print(self.replay.describe())
        teacher = compat.raw_teacher(self)
        if getattr(teacher, "checkpoints_loaded", False):  # a multi-teacher loads its experts when it is built
            compat.mark_teacher_loaded(self)
        self.expert_stats = ExpertStats.attach(teacher, steps, num_envs, self.device)  # None: one teacher

    # ------------------------------------------------------------------ construction
    @staticmethod
    def construct_algorithm(obs: TensorDict, env: Any, cfg: dict, device: str) -> MixingDistillation:
        """Construct through rsl_rl's own path, then read the run's ``max_iterations``, ``seed`` and model config."""
        model_cfg = checkpoint_io.model_config(cfg)  # before construction: rsl-rl 5.4 pops keys of these dicts
        alg = Distillation.construct_algorithm(obs, env, cfg, device)
        if not isinstance(alg, MixingDistillation):  # pragma: no cover - class_name names another class
            raise TypeError(f"algorithm.class_name resolved to {type(alg).__name__}, not MixingDistillation.")
        alg.configure_run(max_iterations=cfg.get("max_iterations"), seed=cfg.get("seed"))
        alg.model_cfg = model_cfg
        return alg

    # ------------------------------------------------------------------ rsl_rl hooks
    def train_mode(self) -> None:
        """Set train mode; as rsl_rl's runners call this at the start of ``learn``, also resync the iteration.

        Like rsl_rl's ``Distillation.train_mode`` it does not require a loaded teacher (rsl_rl's runner checks that
        in ``learn``; this algorithm checks it again before the first rollout, see :meth:`act`).
        """
        super().train_mode()
        self.start_learning()

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Run student and teacher for every env; return the mixed action (teacher where the mask is set)."""
        core = self.mixing_core
        if core.pending:
            if not self.teacher_loaded:  # once per iteration, a Python flag: before any rollout of an unloaded teacher
                raise ValueError(
                    "Teacher model parameters not loaded. Load a teacher checkpoint (runner.load(path)) before learn()."
                )
            core.begin_iteration()
        if self.replay is not None and self.replay.recurrent:  # the hidden state this step starts from
            self.replay.record_hidden(self.storage.step, self.student.get_hidden_state())
        student_actions = super().act(obs)
        teacher_actions = self.transition.privileged_actions  # stored raw; teacher_action_clip applies in update()
        mask = core.policy.step()
        self._step_mask = mask
        executed = core.policy.select(student_actions, teacher_actions)
        step = self.storage.step
        if step < self.teacher_masks.shape[0]:
            self.teacher_masks[step].copy_(mask)
            self.executed_actions[step].copy_(executed)
        if self.expert_stats is not None:
            self.expert_stats.record(step)
        return executed

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]
    ) -> None:
        """Record the step, renew episode-level draws of finished envs, and note where to log scalars."""
        if self.episode_returns is not None:
            self.episode_returns.record(self._step_mask, rewards, dones)
        if self.loss_weights is not None:
            self.loss_weights.record(self.storage.step, extras)
        self.mixing_core.on_env_step(dones, extras)
        super().process_env_step(obs, rewards, dones, extras)

    def update(self) -> dict[str, float]:
        """Train the student on all visited states; compute, log and print this iteration's mixing metrics."""
        experts = self.expert_stats
        if experts is not None:
            experts.check()  # selector values that named no expert raise, before any step
        filled = max(1, min(self.storage.step, self.teacher_masks.shape[0]))
        self._check_and_clip_labels(filled)
        masks = self.teacher_masks[:filled]
        stats = IterationStats(self.device)
        stats.add("teacher_steps", masks.sum())
        stats.add("steps", float(masks.numel()))
        signal = self.schedule.signal
        if signal == "discrepancy":
            add_label_moments(stats, self.storage.privileged_actions[:filled], masks)
        weights = None
        if self.loss_weights is not None:
            weights = self.loss_weights.weights(self.teacher_masks, self.storage.dones, self.iteration, filled)
        self._set_learning_rate()
        self.loss_fn.begin(self.teacher_masks, weights, None if experts is None else experts.add_step_loss)
        try:
            loss_dict = super().update()
        finally:
            self.loss_fn.end()
        check_loss(loss_dict, compat.raw_teacher(self))
        stats.add("behavior_loss", self.loss_fn.sums)
        if self.replay is not None:
            stats.add("replay_loss", self.replay.step(self.student, filled))
        if self.episode_returns is not None:
            stats.add("episode_returns", self.episode_returns.take())
        take_estimator = getattr(compat.raw_student(self), "take_estimator_stats", None)  # dagmix.models' estimator
        if take_estimator is not None:
            stats.add("estimator_loss", take_estimator())
        if experts is not None:
            stats.add("experts", experts.take(experts.ids[:filled]))
        values = stats.read(all_reduce=getattr(self, "is_multi_gpu", False))  # every rank takes the same decisions
        metrics = self._metrics(values)
        if experts is not None:
            metrics.update(experts.metrics(values["experts"]))
        if signal is not None:
            self.schedule.observe(self.iteration, compute_signal(signal, values))
        metrics.update(self.schedule.log_scalars())
        self.mixing_core.end_iteration(metrics, loss_dict)
        return loss_dict

    def _check_and_clip_labels(self, filled: int) -> None:
        """Stop on non-finite labels or executed actions (before any gradient step), then clip the stored labels.

        The labels are stored raw during the rollout, so ``teacher_action_clip`` cannot hide an Inf from the check;
        both cost one reduction and one in-place clamp per update, nothing per env step.
        """
        labels = self.storage.privileged_actions[:filled]
        check_finite(labels, self.executed_actions[:filled], compat.raw_teacher(self))
        if self.teacher_action_clip is not None:
            labels.clamp_(-self.teacher_action_clip, self.teacher_action_clip)

    def _metrics(self, values: dict[str, list[float]]) -> dict[str, float]:
        """Return the iteration's logged scalars from the read-back statistics."""
        (teacher_steps,), (steps,) = values["teacher_steps"], values["steps"]
        loss_t, cnt_t, loss_s, cnt_s = values["behavior_loss"]
        core = self.mixing_core
        metrics = {
            SCALAR_TRAINING_PHASE: float(core.phase),
            SCALAR_CURRENT_ITERATION: float(core.iteration),
            SCALAR_BETA: core.beta,
            SCALAR_TEACHER_FRACTION: teacher_steps / steps,
            SCALAR_LEARNING_RATE: float(self.optimizer.param_groups[0]["lr"]),
        }
        if cnt_t > 0:
            metrics[SCALAR_LOSS_TEACHER_DRIVEN] = loss_t / cnt_t
        if cnt_s > 0:
            metrics[SCALAR_LOSS_STUDENT_DRIVEN] = loss_s / cnt_s
        if "estimator_loss" in values:
            estimator_sum, estimator_count = values["estimator_loss"]
            if estimator_count > 0:
                metrics[SCALAR_ESTIMATOR_LOSS] = estimator_sum / estimator_count
        if "replay_loss" in values:
            replay_sum, replay_count = values["replay_loss"]
            if replay_count > 0:
                metrics[SCALAR_REPLAY_LOSS] = replay_sum / replay_count
        return metrics

    def get_policy(self) -> Any:
        """Return the student to evaluate and export: the averaged one with ``ema_decay``, else rsl_rl's."""
        if self.ema is None:
            return super().get_policy()
        self.ema.share_distribution(compat.raw_student(self))  # rsl_rl's logger reads get_policy().output_std
        return self.ema.model

    def broadcast_parameters(self) -> None:
        """Broadcast the models (and the averaged student) from rank 0, as rsl_rl does at the start of learn."""
        super().broadcast_parameters()
        if self.ema is not None:
            for tensor in self.ema.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> dict:
        """Return rsl_rl's checkpoint dict plus the mixing state under ``"dagmix"``.

        With ``ema_decay``, ``student_state_dict`` is the averaged student (what stock rsl_rl loads) and the raw
        training weights are under ``["dagmix"]["raw_student_state_dict"]`` (``optimizer_state_dict`` is theirs).
        """
        check_student_weights(compat.raw_student(self) or self.get_policy())
        saved = super().save()
        saved[CHECKPOINT_KEY] = self.mixing_core.state_dict(model=getattr(self, "model_cfg", None))
        if self.ema is not None:
            self.ema.save_into(saved, CHECKPOINT_KEY)
        return saved

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Load as rsl_rl does; when the iteration is resumed, also resume the schedule and the mask generator."""
        load_iteration = super().load(loaded_dict, load_cfg, strict)
        if not compat.STUDENT_TEACHER_POLICY and loads_student(loaded_dict, load_cfg):
            restore_student(
                self.ema, compat.raw_student(self), loaded_dict.get(CHECKPOINT_KEY), bool(load_iteration), strict
            )
        if load_iteration:
            self.mixing_core.resume(loaded_dict.get(CHECKPOINT_KEY), int(loaded_dict["iter"]))
        return load_iteration
