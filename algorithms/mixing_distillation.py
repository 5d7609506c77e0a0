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

from dagmix.algorithms import _compat, checkpoint_io
from dagmix.algorithms.ema import WeightAverage, WeightAveragingConfig, loads_student, restore_student
from dagmix.algorithms.finite_guard import FiniteGuard, check_loss, check_student_weights
from dagmix.algorithms.lr_schedule import LearningRateScheduleConfig
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
from dagmix.algorithms.replay import AggregationReplay
from dagmix.algorithms.training_options import LossWeighting, ReplayConfig
from dagmix.mixing.adaptive import AdaptiveSchedule, ReturnRatioSchedule
from dagmix.mixing.config import MixingConfig, drop_unset
from dagmix.mixing.policy import MixingPolicy, reseed_value
from dagmix.mixing.schedules import BetaSchedule

_compat.check_rsl_rl_version()

MIXING_STATE_FORMAT_VERSION = 1
"""Version of the ``checkpoint["dagmix"]`` layout; bumped on incompatible changes."""

CHECKPOINT_KEY = "dagmix"
"""Key of the mixing state in rsl_rl checkpoints (ignored by stock rsl_rl when loading)."""

_DAGMIX_KEYS = (
    "mixing",
    "use_two_stage_training",
    "phase1_iterations",
    "phase_console_output",
    "teacher_action_clip",
    "loss_weighting",
    "replay",
    "learning_rate_schedule",
    "min_learning_rate",
    "warmup_iterations",
    "learning_rate_iterations",
    "ema_decay",
)
SCALAR_REPLAY_LOSS = "Distillation/replay_loss"
SCALAR_LEARNING_RATE = "Distillation/learning_rate"
_PARENT_KEYS = set(inspect.signature(Distillation.__init__).parameters) | {"rnd_cfg", "symmetry_cfg"}


class _SplitLoss:
    """Wraps the behaviour loss; also sums it per sample on teacher- and student-driven steps (on the device)."""

    def __init__(self, fn: Any, device: str) -> None:
        self.fn = fn
        self.sums = torch.zeros(4, device=device)  # loss teacher-driven, count, loss student-driven, count
        self.mask: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None  # (steps, num_envs) per-sample weights, or None: the plain mean
        self.index = 0

    def begin(self, mask: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        self.mask, self.weights, self.index = mask, weights, 0
        self.sums.zero_()

    def end(self) -> None:
        self.mask = self.weights = None

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.weights is not None and self.mask is not None:
            per = self.fn(pred, target, *args, reduction="none", **kwargs)
            per = per.reshape(per.shape[0], -1).mean(-1)
            w = self.weights[self.index % self.weights.shape[0]].to(per.dtype)
            loss = (per * w).sum() / w.sum().clamp_min(1e-12)
        else:
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
    mixing: Mapping[str, Any] | MixingConfig | None,
    use_two_stage_training: bool | None,
    phase1_iterations: int | None,
) -> MixingConfig:
    """Turn the algorithm config's mixing keys into a validated MixingConfig (the one conversion point)."""
    if isinstance(mixing, Mapping):
        mixing = drop_unset(mixing)  # configclass dicts hold every field: None means unset
    if use_two_stage_training not in (True, False, None):
        raise ValueError(f"use_two_stage_training={use_two_stage_training!r} must be True or False.")
    if use_two_stage_training is None and phase1_iterations is not None:  # given alone: ignored, say so
        _warn_phase1_ignored(mixing, phase1_iterations)
    if use_two_stage_training:
        if mixing:
            raise ValueError(
                "Both a non-empty 'mixing' and use_two_stage_training=True were given; they configure the same "
                "thing. Keep one: mixing={'schedule': 'two_stage', 'phase1_iterations': N} or the two-stage keys "
                "use_two_stage_training=True with phase1_iterations=N."
            )
        if phase1_iterations is None:
            raise ValueError("use_two_stage_training=True needs phase1_iterations (e.g. phase1_iterations=500).")
        return MixingConfig.from_dict({"schedule": "two_stage", "phase1_iterations": phase1_iterations})
    if not mixing:
        return MixingConfig(schedule="student_only")
    return MixingConfig.from_dict(mixing)


def _warn_phase1_ignored(mixing: Mapping[str, Any] | MixingConfig | None, phase1_iterations: int) -> None:
    """Warn that a top-level ``phase1_iterations`` given without ``use_two_stage_training`` is not used.

    Only when ``use_two_stage_training`` is not given at all: config front ends (Isaac Lab's configclass) always
    pass both keys, with ``use_two_stage_training=False`` meaning "mixing decides".
    """
    own = mixing.get("phase1_iterations") if isinstance(mixing, Mapping) else None
    if own is None and isinstance(mixing, MixingConfig):
        own = mixing.schedule_params.get("phase1_iterations")
    if own is not None:
        why = f"the mixing dict sets its own phase1_iterations={own}, which is used"
    else:
        why = (
            "it is read only with use_two_stage_training=True; set that, or use "
            f"mixing={{'schedule': 'two_stage', 'phase1_iterations': {phase1_iterations}}}"
        )
    warnings.warn(f"phase1_iterations={phase1_iterations} is ignored: {why}.", stacklevel=4)


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
        ema_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the algorithm; rsl_rl's own keys (``learning_rate``, ...) pass through to ``Distillation``.

        Args:
            *models: rsl_rl's positional arguments: ``(student, teacher, storage)`` on rsl-rl 4.x/5.x (models such
                as MLPModel / RNNModel and a ``distillation`` RolloutStorage), ``(policy, storage)`` on 3.x (one
                StudentTeacher module).
            mixing: Flat mixing dict, e.g. ``{"schedule": "linear", "iterations": 300, "granularity": "episode"}``.
            use_two_stage_training: The two-stage patch's switch; with ``phase1_iterations`` it means schedule
                ``two_stage``. None (not given) is False.
            phase1_iterations: Teacher-driven iterations; read only when ``use_two_stage_training`` is True (given
                without it, it is ignored with a warning).
            phase_console_output: Print the phase lines and the switch banner (rank 0 only).
            teacher_action_clip: If set, the stored label (the teacher action the student learns) is clamped to
                [-clip, clip], e.g. to the env's action bounds; the executed action is not changed (the env
                clamps what it receives). None (default) stores the raw teacher action, as rsl_rl does.
            loss_weighting: Who-drove-aware loss weights (see :class:`LossWeighting`); off by default.
            replay: Bounded aggregation of past rollouts (see :class:`ReplayConfig`); off by default.
            learning_rate_schedule: ``constant`` (default), ``linear`` or ``cosine``; with ``min_learning_rate``,
                ``warmup_iterations`` and ``learning_rate_iterations`` (see :class:`LearningRateScheduleConfig`).
            min_learning_rate: See :class:`LearningRateScheduleConfig`.
            warmup_iterations: See :class:`LearningRateScheduleConfig`.
            learning_rate_iterations: See :class:`LearningRateScheduleConfig`.
            ema_decay: Average the student's weights (see :class:`WeightAveragingConfig`); None (default): off.
            **kwargs: Passed to rsl_rl's ``Distillation`` (e.g. ``multi_gpu_cfg``).
        """
        for key in kwargs:
            if key not in _PARENT_KEYS:
                close = difflib.get_close_matches(key, _DAGMIX_KEYS, n=1, cutoff=0.75)
                if close:
                    raise ValueError(f"Unknown algorithm key {key!r}; did you mean {close[0]!r}?")
                warnings.warn(f"MixingDistillation ignores unknown algorithm key {key!r}.", stacklevel=2)
        for key in ("num_learning_epochs", "gradient_length"):  # rsl_rl divides by them (mid-run for the epochs)
            value = kwargs.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} must be an integer >= 1.")
        self.mixing_cfg = _resolve_mixing(mixing, use_two_stage_training, phase1_iterations)
        if teacher_action_clip is not None and (
            isinstance(teacher_action_clip, bool)
            or not isinstance(teacher_action_clip, (int, float))
            or not teacher_action_clip > 0
        ):
            raise ValueError(f"teacher_action_clip={teacher_action_clip!r} must be a positive number or None.")
        self.teacher_action_clip = None if teacher_action_clip is None else float(teacher_action_clip)
        self.loss_weighting = LossWeighting.from_dict(loss_weighting)
        self.replay_cfg = ReplayConfig.from_dict(replay)
        self.lr_schedule = LearningRateScheduleConfig(
            learning_rate_schedule, min_learning_rate, warmup_iterations, learning_rate_iterations
        )
        self.ema_cfg = WeightAveragingConfig(ema_decay)
        schedule = self.mixing_cfg.build_schedule()
        if isinstance(schedule, ReturnRatioSchedule) and self.mixing_cfg.granularity != "episode":
            raise ValueError(
                "mixing.schedule='return_ratio' compares episodes driven by the student alone with episodes driven by "
                f"the teacher alone, so it needs mixing.granularity='episode' (got {self.mixing_cfg.granularity!r})."
            )
        super().__init__(*models, **kwargs)
        storage = self.storage
        self._base_learning_rate = self.lr_schedule.check_base(self.optimizer.param_groups[0]["lr"])
        self._lr_end: int | None = None  # iteration at which a decaying schedule reaches min_learning_rate
        self.ema = WeightAverage.attach(self.ema_cfg, _compat.raw_student(self), self.optimizer)
        self.schedule: BetaSchedule = schedule
        self.phase_console_output = bool(phase_console_output)
        self._mixed_precision = bool(getattr(self, "use_mixed_precision", False))  # rsl-rl-lib >= 5.5 only

        num_envs, steps = storage.num_envs, storage.num_transitions_per_env
        num_actions = storage.privileged_actions.shape[-1]
        self.mixing_policy = MixingPolicy(
            num_envs,
            self.device,
            granularity=self.mixing_cfg.granularity,
            assignment=self.mixing_cfg.assignment,
            seed=self._rank_seed(self.mixing_cfg.seed) if self.mixing_cfg.seed is not None else reseed_value(0, 0),
        )
        self.teacher_masks = torch.zeros(steps, num_envs, dtype=torch.bool, device=self.device)
        self.executed_actions = torch.zeros(steps, num_envs, num_actions, device=self.device)
        self._finite_guard = FiniteGuard(num_envs, self.device)  # non-finite labels / actions, read per update
        self.loss_fn = _SplitLoss(self.loss_fn, self.device)
        self._step_mask = self.mixing_policy.teacher_mask
        # per-env episode bookkeeping, only for the schedule / weighting that reads it (no cost otherwise)
        self._track_returns = isinstance(schedule, ReturnRatioSchedule)
        if self._track_returns:
            self._ep_return = torch.zeros(num_envs, device=self.device)
            self._ep_teacher = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
            self._ep_student = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
            self._return_sums = torch.zeros(4, device=self.device)  # student sum, count, teacher sum, count
        self._track_outcomes = self.loss_weighting.failed_episode != 1.0
        if self._track_outcomes:
            self._time_outs = torch.zeros(steps, num_envs, dtype=torch.bool, device=self.device)
        self.replay: AggregationReplay | None = None
        if self.replay_cfg.active:
            if _compat.STUDENT_TEACHER_POLICY:
                raise ValueError(
                    "replay needs rsl-rl-lib >= 4 (separate student and teacher models); this is rsl-rl-lib "
                    f"{_compat.RSL_RL_VERSION}. Set replay.iterations=0 or upgrade rsl-rl-lib."
                )
            self.replay = AggregationReplay(
                self.replay_cfg, self.student, storage.observations, num_actions, self.device
            )
            self._replay_generator = torch.Generator(device=self.device)
            self._replay_generator.manual_seed(self.mixing_policy.seed + 1)
            if self.gpu_global_rank == 0:
                print(self.replay.describe())

        self.max_iterations: int | None = None
        self._run_length: int | None = None
        self._iteration = 0  # iteration of the current / next rollout (the runner's `it`)
        self._runner_iteration = 0  # mirrors the runner's current_learning_iteration
        self._pending = True  # the next act() starts an iteration
        self._beta, self._phase = 0.0, 2
        self._forced_phase2_from: int | None = None
        self._seen_positive_beta = False
        self._banner_printed = False
        self._log_target: dict | None = None
        self._log_targets: list[dict] = []  # the extras dicts the logger saw this iteration (envs may swap them)
        self._logged_keys: set[str] = set()
        self.last_metrics: dict[str, float] = {}
        self.iteration_callbacks: list[Callable[[int, dict[str, float]], Mapping[str, float] | None]] = []
        """Called as ``fn(iteration, metrics)`` at the end of each update (after the student's gradient steps);
        a returned mapping of scalars is logged with the iteration's metrics (e.g. ``Eval/student_return``)."""

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

    def configure_run(self, max_iterations: int | None = None, seed: int | None = None) -> None:
        """Set the run length (for the switch-beyond-end warning) and derive the mask seed from the run's seed."""
        if max_iterations is not None:
            self.max_iterations = int(max_iterations)
        if self.mixing_cfg.seed is None and seed is not None:
            self.mixing_policy.seed = reseed_value(self._rank_seed(int(seed)), 0)
            self.mixing_policy.generator.manual_seed(self.mixing_policy.seed)

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

    # ------------------------------------------------------------------ schedule
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
        if not self.teacher_loaded:  # once per iteration, a Python flag: before any rollout of an unloaded teacher
            raise ValueError(
                "Teacher model parameters not loaded. Load a teacher checkpoint (runner.load(path)) before learn()."
            )
        it = self._iteration
        beta = self.beta_at(it)
        self.mixing_policy.begin_iteration(beta, it)
        self._beta, self._phase = beta, self.phase_at(it)  # before observe(): adaptive schedules then move on
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
        """Set train mode; as rsl_rl's runners call this at the start of ``learn``, also resync the iteration.

        Like rsl_rl's ``Distillation.train_mode`` it does not require a loaded teacher (rsl_rl's runner checks that
        in ``learn``; this algorithm checks it again before the first rollout, see :meth:`act`).
        """
        super().train_mode()
        self._iteration = self._runner_iteration
        self._pending = True
        self._warn_if_switch_beyond_end()
        self._lr_end = self.lr_schedule.end_iteration(self._iteration, self._run_length or self.max_iterations)
        self._run_length = None

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Run student and teacher for every env; return the mixed action (teacher where the mask is set)."""
        if self._pending:
            self._begin_iteration()
        if self.replay is not None and self.replay.recurrent:  # the hidden state this step starts from
            self.replay.record_hidden(self.storage.step, self.student.get_hidden_state())
        student_actions = super().act(obs)
        teacher_actions = self.transition.privileged_actions
        if self.teacher_action_clip is not None:
            clip = self.teacher_action_clip
            self.transition.privileged_actions = teacher_actions.clamp(-clip, clip)
        mask = self.mixing_policy.step()
        self._step_mask = mask
        executed = self.mixing_policy.select(student_actions, teacher_actions)
        self._finite_guard.record(teacher_actions, executed)  # the raw label: clipping must not hide an Inf
        step = self.storage.step
        if step < self.teacher_masks.shape[0]:
            self.teacher_masks[step].copy_(mask)
            self.executed_actions[step].copy_(executed)
        return executed

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]
    ) -> None:
        """Record the step, renew episode-level draws of finished envs, and note where to log scalars."""
        if self._track_returns:
            self._record_episode_returns(rewards, dones)
        if self._track_outcomes:
            step = self.storage.step
            time_outs = extras.get("time_outs")
            if time_outs is None:
                raise ValueError(
                    "loss_weighting.failed_episode needs extras['time_outs'] from the env (rsl_rl's convention) to "
                    "tell terminations from time-outs; this env does not provide it."
                )
            if step < self._time_outs.shape[0]:
                self._time_outs[step].copy_(time_outs.view(-1))
        self.mixing_policy.on_dones(dones)
        target = extras["episode"] if "episode" in extras else extras.setdefault("log", {})
        if not self._log_targets or target is not self._log_targets[-1]:
            self._log_targets.append(target)
        self._log_target = target
        super().process_env_step(obs, rewards, dones, extras)

    def _record_episode_returns(self, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        """Accumulate returns of episodes that one driver drove from start to end (on the device, no sync)."""
        mask = self._step_mask
        self._ep_return += rewards.view(-1)
        self._ep_teacher |= mask
        self._ep_student |= ~mask
        done = dones.view(-1).bool()
        pure_s = done & ~self._ep_teacher
        pure_t = done & ~self._ep_student
        ret = self._ep_return
        self._return_sums += torch.stack([(ret * pure_s).sum(), pure_s.sum(), (ret * pure_t).sum(), pure_t.sum()])
        keep = ~done
        self._ep_return *= keep
        self._ep_teacher &= keep
        self._ep_student &= keep

    def update(self) -> dict[str, float]:
        """Train the student on all visited states; compute, log and print this iteration's mixing metrics."""
        self._finite_guard.check(self)  # raises on non-finite labels / actions, before any gradient step
        filled = max(1, min(self.storage.step, self.teacher_masks.shape[0]))
        masks = self.teacher_masks[:filled]
        stats = [masks.sum().view(1).float(), torch.full((1,), float(masks.numel()), device=self.device)]
        wants = self.schedule.signal if isinstance(self.schedule, AdaptiveSchedule) else None
        if wants == "discrepancy":  # teacher-label moments on student-driven samples, for Var(a_teacher)
            labels = self.storage.privileged_actions[:filled].float()
            on_s = (~masks).unsqueeze(-1).float()
            stats += [on_s.sum().view(1), (labels * on_s).sum((0, 1)), (labels.square() * on_s).sum((0, 1))]
        weights = self._loss_weights(filled) if self.loss_weighting.active else None
        self._set_learning_rate()
        self.loss_fn.begin(self.teacher_masks, weights)
        try:
            loss_dict = super().update()
        finally:
            self.loss_fn.end()
        check_loss(loss_dict, self)
        stats.append(self.loss_fn.sums)
        if self.replay is not None:
            stats.append(self._replay_update(filled))
        if self._track_returns:
            stats.append(self._return_sums.clone())
            self._return_sums.zero_()
        vec = torch.cat(stats)
        multi_gpu = getattr(self, "is_multi_gpu", False)
        if multi_gpu and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(vec)  # every rank sees the same sums, so takes the same decisions
        values = vec.tolist()  # the only device-to-host read of the iteration
        mask_sum, mask_count = values[0], values[1]
        rest = values[2:]
        signals: dict[str, float] = {}
        if wants == "discrepancy":
            a = self.storage.privileged_actions.shape[-1]
            n_s, sum_a, sum_a2 = rest[0], rest[1 : 1 + a], rest[1 + a : 1 + 2 * a]
            rest = rest[1 + 2 * a :]
            var = sum(q / n_s - (m / n_s) ** 2 for m, q in zip(sum_a, sum_a2, strict=True)) / a if n_s else 0.0
            signals["label_variance"] = var
        loss_t, cnt_t, loss_s, cnt_s = rest[:4]
        rest = rest[4:]
        frac_value = mask_sum / mask_count
        it, beta = self._iteration, self._beta
        metrics = {
            SCALAR_TRAINING_PHASE: float(self._phase),
            SCALAR_CURRENT_ITERATION: float(it),
            SCALAR_BETA: beta,
            SCALAR_TEACHER_FRACTION: frac_value,
            SCALAR_LEARNING_RATE: float(self.optimizer.param_groups[0]["lr"]),
        }
        if cnt_t > 0:
            metrics[SCALAR_LOSS_TEACHER_DRIVEN] = loss_t / cnt_t
        if cnt_s > 0:
            metrics[SCALAR_LOSS_STUDENT_DRIVEN] = loss_s / cnt_s
        if self.replay is not None:
            replay_sum, replay_count = rest[:2]
            rest = rest[2:]
            if replay_count > 0:
                metrics[SCALAR_REPLAY_LOSS] = replay_sum / replay_count
        if isinstance(self.schedule, AdaptiveSchedule):
            nan = float("nan")
            signals["behavior_loss"] = (loss_t + loss_s) / (cnt_t + cnt_s) if cnt_t + cnt_s else nan
            if wants == "discrepancy":
                var = signals.pop("label_variance")
                signals["discrepancy"] = (loss_s / cnt_s) / var if cnt_s and var > 0 else nan
            if self._track_returns:
                ret_s, n_s, ret_t, n_t = rest[:4]
                teacher_mean = ret_t / n_t if n_t else nan
                ok = n_s and n_t and teacher_mean > 0
                signals["return_ratio"] = (ret_s / n_s) / teacher_mean if ok else nan
            self.schedule.observe(it, signals)
            metrics.update(self.schedule.log_scalars())
        for callback in self.iteration_callbacks:
            extra = callback(it, dict(metrics))
            if extra:
                metrics.update(extra)
        self.last_metrics = metrics
        # rsl_rl's logger averages each key over the extras dicts of every step. Envs that replace the dict only at
        # resets (Isaac Lab) hand over several per iteration, some still holding older values: write into all.
        self._logged_keys |= metrics.keys()
        for target in {id(t): t for t in self._log_targets}.values():
            for key in self._logged_keys - metrics.keys():  # keys a reused dict may still hold
                target.pop(key, None)
            target.update(metrics)
        self._log_targets.clear()
        if self._console:
            print("\n".join(phase_lines(self.schedule, it, beta)))
        self._runner_iteration = it
        self._iteration = it + 1
        self._pending = True
        return loss_dict

    def _set_learning_rate(self) -> None:
        """Set the optimizer's learning rate for this iteration's update (untouched for a constant schedule)."""
        if self.lr_schedule.active:
            if self.lr_schedule.decays and self._lr_end is None:  # update() without learn(): resolve as learn() does
                self._lr_end = self.lr_schedule.end_iteration(self._iteration, self.max_iterations)
            lr = self.lr_schedule.apply(self.optimizer, self._base_learning_rate, self._iteration, self._lr_end)
            self.learning_rate = lr  # rsl_rl's logger reads it (Loss/learning_rate)

    def _loss_weights(self, filled: int) -> torch.Tensor:
        """Return the (steps, num_envs) per-sample loss weights of this rollout (who drove, episode outcome)."""
        cfg = self.loss_weighting
        dropped = cfg.drop_teacher_driven_after is not None and self._iteration >= cfg.drop_teacher_driven_after
        w_teacher = 0.0 if dropped else cfg.teacher_driven
        weights = torch.where(self.teacher_masks, w_teacher, cfg.student_driven).float()
        if self._track_outcomes:
            steps = self.teacher_masks.shape[0]
            dones = self.storage.dones.view(steps, -1).bool()
            failed_end = dones & ~self._time_outs
            failed = torch.zeros_like(dones)
            outcome = torch.zeros_like(dones[0])  # outcome of the episode each step belongs to; False: unknown
            for t in range(filled - 1, -1, -1):  # backwards: a done at t decides the steps since the last done
                outcome = torch.where(dones[t], failed_end[t], outcome)
                failed[t] = outcome
            weights = weights * torch.where(failed, cfg.failed_episode, 1.0)
        return weights

    def _replay_update(self, filled: int) -> torch.Tensor:
        """Take the replay's gradient steps on past rollouts, then store this one; return (loss sum, steps)."""
        replay = self.replay
        assert replay is not None
        total = torch.zeros(2, device=self.device)
        if replay.filled > 0:
            onpolicy_steps = max(1, self.num_learning_epochs * filled // self.gradient_length)
            n_steps = max(1, round(self.replay_cfg.ratio * onpolicy_steps))
            batch = self.gradient_length * self.storage.num_envs
            hidden = self.student.get_hidden_state() if replay.recurrent else None  # the next rollout's
            for _ in range(n_steps):
                with torch.amp.autocast(  # as rsl_rl's update does
                    device_type=torch.device(self.device).type, enabled=self._mixed_precision, dtype=torch.bfloat16
                ):
                    if replay.recurrent:  # num_envs chunks of gradient_length steps: as one on-policy step
                        loss, logged = replay.sequence_loss(
                            self.student,
                            self.loss_fn.fn,
                            self.storage.num_envs,
                            self.gradient_length,
                            self._replay_generator,
                        )
                    else:
                        obs, labels = replay.sample(batch, self._replay_generator)
                        loss = logged = self.loss_fn.fn(self.student(obs), labels)
                self.optimizer.zero_grad()
                loss.backward()
                if self.is_multi_gpu:
                    self.reduce_parameters()
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.max_grad_norm)
                self.optimizer.step()
                total += torch.stack([logged.detach().float(), torch.ones((), device=self.device)])
            if replay.recurrent:
                self.student.reset(hidden_state=hidden)
        replay.add(
            self.storage.observations[:filled], self.storage.privileged_actions[:filled], self.storage.dones[:filled]
        )
        return total

    def get_policy(self) -> Any:
        """Return the student to evaluate and export: the averaged one with ``ema_decay``, else rsl_rl's."""
        if self.ema is None:
            return super().get_policy()
        self.ema.share_distribution(_compat.raw_student(self))  # rsl_rl's logger reads get_policy().output_std
        return self.ema.model

    def broadcast_parameters(self) -> None:
        """Broadcast the models (and the averaged student) from rank 0, as rsl_rl does at the start of learn."""
        super().broadcast_parameters()
        if self.ema is not None:
            for tensor in self.ema.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

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
            "model": getattr(self, "model_cfg", None),  # the model configs, so that a copied file is enough
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
        saved, seed = state["policy"], self.mixing_policy.seed
        changed: dict[str, tuple[Any, Any]] = {}
        if saved.get("granularity") != self.mixing_cfg.granularity:
            changed["granularity"] = (saved.get("granularity"), self.mixing_cfg.granularity)
        if state.get("mixing", {}).get("seed") != self.mixing_cfg.seed or (
            self.gpu_world_size == 1 and saved.get("seed") != seed  # a derived seed (from the run's seed) changed
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
        self.mixing_policy.load_state_dict(saved)
        if "seed" in changed:  # the configured seed, re-seeded deterministically from (seed, iteration)
            self.mixing_policy.seed = seed
            self.mixing_policy.reseed(iteration)

    def save(self) -> dict:
        """Return rsl_rl's checkpoint dict plus the mixing state under ``"dagmix"``.

        With ``ema_decay``, ``student_state_dict`` is the averaged student (what stock rsl_rl loads) and the raw
        training weights are under ``["dagmix"]["raw_student_state_dict"]`` (``optimizer_state_dict`` is theirs).
        """
        check_student_weights(_compat.raw_student(self) or self.get_policy())
        saved = super().save()
        saved[CHECKPOINT_KEY] = self.mixing_state_dict()
        if self.ema is not None:
            self.ema.save_into(saved, CHECKPOINT_KEY)
        return saved

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Load as rsl_rl does; when the iteration is resumed, also resume the schedule and the mask generator."""
        load_iteration = super().load(loaded_dict, load_cfg, strict)
        if not _compat.STUDENT_TEACHER_POLICY and loads_student(loaded_dict, load_cfg):
            restore_student(
                self.ema, _compat.raw_student(self), loaded_dict.get(CHECKPOINT_KEY), bool(load_iteration), strict
            )
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
