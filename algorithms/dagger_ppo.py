"""MixingDAggerPPO: rsl_rl's PPO on the student plus a scheduled imitation loss and per-env beta mixing."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from rsl_rl.algorithms import PPO
from rsl_rl.utils import unpad_trajectories
from tensordict import TensorDict

from dagmix.algorithms import checkpoint_io, compat
from dagmix.algorithms.ema import repair_averaged_student
from dagmix.algorithms.expert_stats import ExpertStats
from dagmix.algorithms.finite_guard import check_finite, check_loss, check_student_weights
from dagmix.algorithms.guidance import TeacherGuidance, set_action_std
from dagmix.algorithms.mixing_core import CHECKPOINT_KEY, MixingSurface, check_algorithm_keys
from dagmix.algorithms.phase_log import SCALAR_BETA, SCALAR_ESTIMATOR_LOSS, SCALAR_TEACHER_FRACTION
from dagmix.mixing.config import MixingConfig
from dagmix.mixing.dagger_ppo_schema import (
    DAGGER_PPO_KEYS,
    kl_adaptive,
    resolve_learning_rate_schedule,
    validate_dagger_ppo,
)

SCALAR_IMITATION_COEF = "Distillation/imitation_coef"
SCALAR_PPO_COEF = "Distillation/ppo_coef"
LABEL_KEY = "dagmix_teacher_action"
"""Key of the teacher's action (the imitation label) in the rollout storage's observations."""
DRIVEN_KEY = "dagmix_teacher_driven"
"""Key of the who-drove flag (1.0: the teacher's action was executed) in the rollout storage's observations."""
WEIGHT_KEY = "dagmix_imitation_weight"
"""Key of the per-sample advisor weight ``w(s)`` in the rollout storage's observations."""
EXPERT_KEY = "dagmix_expert_id"
"""Key of each sample's expert (a multi-teacher's ``expert_ids``, as float) in the rollout storage's observations."""
_PARENT_KEYS = set(inspect.signature(PPO.__init__).parameters) - {"self", "actor", "critic", "storage"}


def _sample_field(batch: Any, key: str) -> torch.Tensor:
    """Return a per-sample field stored in the observations, shaped like the batch's actions."""
    value = batch.observations[key]
    return unpad_trajectories(value, batch.masks) if batch.masks is not None else value


class MixingDAggerPPO(MixingSurface, PPO):
    """PPO on the student (the actor) with a scheduled imitation loss toward a teacher, and beta mixing.

    Per iteration ``it`` (the runner's), the actor's loss is
    ``ppo_coef(it) * (surrogate - entropy_coef * entropy) + imitation_coef(it) * imitation``; the critic keeps
    ``value_loss_coef * value_loss`` at every iteration, so it is trained when PPO takes over. Per env and step the
    teacher's action is executed with probability ``beta(it)`` (the ``mixing`` schedule, as in MixingDistillation).

    Off-policy treatment: where the teacher drove, the stored action is the executed (teacher's) action and its
    stored log-probability is the student's log-probability of it, so ratios and KL stay the student's. Those
    samples are then dropped from the clipped surrogate (it averages over student-driven samples only): the
    behaviour policy there is the deterministic teacher, whose density an importance weight would need. They stay
    in the value loss, the entropy bonus, the adaptive-KL estimate and the imitation term, which uses every
    visited state. With ``beta`` 0 the update is exactly rsl_rl's PPO.

    Attributes:
        teacher: The teacher model (loaded by ``runner.load`` from a PPO checkpoint); never trained.
        mixing_core: The mixing state (:class:`~dagmix.algorithms.mixing_core.MixingCore`): mask, schedule,
            iteration, callbacks; its public surface is forwarded (``mixing_policy``, ``iteration``, ...).
        beta_schedule: The beta schedule (``schedule`` stays rsl_rl's learning-rate schedule).
        imitation_coef: The imitation coefficient schedule.
        ppo_coef: The PPO (policy-gradient) coefficient schedule.
    """

    teacher_loaded: bool = False
    expert_stats: ExpertStats | None = None  # a multi-teacher's per-expert statistics (set by set_teacher)
    model_cfg: dict[str, Any] | None = None
    """The train config's model sections (``obs_groups``, ``actor``, ``critic``, ``teacher``), stored in checkpoints;
    set by :meth:`construct_algorithm` (None when the algorithm is built directly)."""

    def __init__(
        self,
        actor: Any,
        critic: Any,
        storage: Any,
        teacher: Any = None,
        imitation_coef: float | Mapping[str, Any] = 1.0,
        ppo_coef: float | Mapping[str, Any] = 1.0,
        imitation_loss: str = "mse",
        mixing: Mapping[str, Any] | MixingConfig | None = None,
        init_student: str | None = None,
        teacher_action_clip: float | None = None,
        phase_console_output: bool = True,
        imitation_balance: str = "advisor",
        advisor_alpha: float = 10.0,
        advisor_learning_rate: float = 1e-3,
        imitation_floor: float = 0.0,
        critic_warmup: float | None = 0.5,
        critic_warmup_max_iterations: int = 50,
        ppo_ramp_iterations: int = 10,
        min_learning_rate: float | None = None,
        init_student_std: float | None = None,
        init_critic_from_teacher: bool | None = None,
        learning_rate_schedule: str = "auto",
        learning_rate_iterations: int | None = None,
        learning_rate_decay_start_fraction: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the algorithm; rsl_rl's PPO keys (``learning_rate``, ``clip_param``, ...) pass through.

        ``actor`` is the student (MLPModel or RNNModel with a distribution, reading its own observation groups),
        ``critic`` the critic (it may read privileged groups), ``storage`` rsl_rl's ``rl`` RolloutStorage (two
        buffers are added: the labels and the who-drove flags), ``teacher`` the teacher model
        (:meth:`construct_algorithm` builds it from the config's ``teacher`` section). The keywords between
        ``teacher`` and ``**kwargs`` are dagmix's keys, each declared and documented once in
        :class:`~dagmix.mixing.dagger_ppo_schema.DAggerPPOSchema` (``docs/config.md``).
        """
        compat.require_ppo_with_models("MixingDAggerPPO")
        check_algorithm_keys("MixingDAggerPPO", kwargs, DAGGER_PPO_KEYS, PPO, _PARENT_KEYS)
        if kwargs.get("symmetry_cfg") is not None:
            raise ValueError(
                "symmetry_cfg is not supported by MixingDAggerPPO (the imitation labels would need mirroring too); "
                "set symmetry_cfg=None."
            )
        options = validate_dagger_ppo({k: v for k, v in locals().items() if k in DAGGER_PPO_KEYS})
        self.imitation_coef = options.imitation_coef
        self.ppo_coef = options.ppo_coef
        self.imitation_loss = options.imitation_loss
        super().__init__(actor, critic, storage, **kwargs)
        self._mixed_precision = bool(getattr(self, "use_mixed_precision", False))  # rsl-rl-lib >= 5.5 only
        active = not options.imitation_coef.always_zero()
        adaptive = kl_adaptive(self.schedule, self.desired_kl)
        self.lr_schedule = resolve_learning_rate_schedule(options, self.learning_rate, adaptive)
        self._base_learning_rate = float(self.learning_rate)
        self._learning_rate_auto = options.learning_rate_schedule == "auto"
        self.teacher_action_clip = options.teacher_action_clip
        self.teacher: Any = None
        if teacher is not None:
            self.set_teacher(teacher)

        steps, num_envs = storage.num_transitions_per_env, storage.num_envs
        num_actions = storage.actions.shape[-1]
        # the labels and who-drove flags travel inside the stored observations, so rsl_rl's own mini-batch
        # generators (shuffled, or padded trajectories for recurrent models) hand them out aligned with each sample
        storage.observations.set(LABEL_KEY, torch.zeros(steps, num_envs, num_actions, device=self.device))
        storage.observations.set(DRIVEN_KEY, torch.zeros(steps, num_envs, 1, device=self.device))
        storage.observations.set(WEIGHT_KEY, torch.ones(steps, num_envs, 1, device=self.device))
        self.mixing_core = self.build_mixing_core(options.mixing, num_envs, options.phase_console_output)
        self.init_student = init_student
        if init_student is not None:
            self._load_init_student(init_student)
            if options.init_student_std is not None:
                set_action_std(self._raw_actor, options.init_student_std)
            if self.mixing_core.console:
                print(f"[dagmix] actor initialised from init_student={init_student!r} (its student_state_dict)")
        # the recipe (built after init_student: the advisor head copies the distilled actor); imitation_coef 0 at
        # every iteration leaves it off, and the algorithm is stock PPO
        self.guidance = TeacherGuidance(options, self._raw_actor, float(self.learning_rate), active)
        self._coefs = (self.ppo_coef.value(0), self.imitation_coef.value(0))  # (ppo, imitation), set per iteration
        self._labelled = 0  # storage steps recorded through act() (labels, who drove) since the storage was emptied

    # ------------------------------------------------------------------ construction
    @staticmethod
    def construct_algorithm(obs: TensorDict, env: Any, cfg: dict, device: str) -> MixingDAggerPPO:
        """Build actor, critic and storage through rsl_rl's PPO path, then the teacher from ``cfg["teacher"]``.

        The teacher is built with the global RNG state saved and restored (its weights come from the checkpoint),
        so a run draws exactly the random numbers stock PPO draws.
        """
        compat.require_ppo_with_models("MixingDAggerPPO")
        if not isinstance(cfg.get("teacher"), Mapping) or "class_name" not in cfg["teacher"]:
            raise ValueError(
                "MixingDAggerPPO needs a 'teacher' model section in the train config (like 'actor', e.g. "
                "{'class_name': 'MLPModel', 'hidden_dims': [...], 'distribution_cfg': {...}}) matching the PPO "
                "checkpoint it is loaded from."
            )
        from rsl_rl.utils import resolve_callable, resolve_obs_groups

        cfg["obs_groups"] = resolve_obs_groups(obs, cfg["obs_groups"], ["actor", "critic", "teacher"])
        model_cfg = checkpoint_io.model_config(cfg)  # before construction: rsl-rl 5.4 pops keys of these dicts
        alg = PPO.construct_algorithm(obs, env, cfg, device)
        if not isinstance(alg, MixingDAggerPPO):  # pragma: no cover - class_name names another class
            raise TypeError(f"algorithm.class_name resolved to {type(alg).__name__}, not MixingDAggerPPO.")
        teacher_cfg = copy.deepcopy(dict(cfg["teacher"]))
        teacher_class = resolve_callable(teacher_cfg.pop("class_name"))
        devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            teacher = teacher_class(obs, cfg["obs_groups"], "teacher", env.num_actions, **teacher_cfg)
        print(f"Teacher Model: {teacher}")
        alg.set_teacher(teacher)
        alg.configure_run(max_iterations=cfg.get("max_iterations"), seed=cfg.get("seed"))
        alg.model_cfg = model_cfg
        return alg

    def _load_init_student(self, path: str) -> None:
        """Initialise the actor from the ``student_state_dict`` of the distillation checkpoint at ``path``."""
        try:
            loaded = checkpoint_io.load_checkpoint(path, map_location=self.device)  # weights_only=True
        except checkpoint_io.CheckpointError as e:
            raise ValueError(f"init_student: {e}") from None
        if "student_state_dict" not in loaded:
            raise ValueError(
                f"init_student={path!r} is not a distillation checkpoint: it has no 'student_state_dict' (keys: "
                f"{sorted(loaded)}). Pass a checkpoint written by MixingDistillation or rsl_rl's Distillation."
            )
        try:
            self._raw_actor.load_state_dict(loaded["student_state_dict"])
        except RuntimeError as e:
            raise ValueError(
                f"init_student={path!r}: its student does not fit the actor of this config "
                f"({checkpoint_io.state_dict_mismatch(e)}). Build the actor as the student was built: the same "
                "model keys (actor.* as its run's student.*), observation groups and env overrides (e.g. "
                "env.velocity_noise), as in its run's params/agent.json and params/env.json."
            ) from None
        repair_averaged_student(self._raw_actor, loaded.get(CHECKPOINT_KEY))

    def set_teacher(self, teacher: Any) -> None:
        """Use ``teacher`` (a model with this env's actions as output) as the teacher; it is never trained."""
        self.teacher = teacher.to(self.device)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        if getattr(teacher, "checkpoints_loaded", False):  # a multi-teacher loads its experts when it is built
            self.teacher_loaded = True
        storage = self.storage
        self.expert_stats = ExpertStats.attach(teacher, 0, storage.num_envs, self.device)  # None: one teacher
        if self.expert_stats is not None:  # each sample's expert travels with it through the mini-batches
            shape = (storage.num_transitions_per_env, storage.num_envs, 1)
            storage.observations.set(EXPERT_KEY, torch.zeros(shape, device=self.device))

    # ------------------------------------------------------------------ schedules

    def coefficients_at(self, iteration: int) -> dict[str, float]:
        """Return ``{"beta", "imitation_coef", "ppo_coef"}`` at the runner's ``iteration``."""
        return {
            "beta": self.beta_at(iteration),
            "imitation_coef": self.imitation_coef.value(iteration),
            "ppo_coef": self.ppo_coef.value(iteration),
        }

    # ------------------------------------------------------------------ rsl_rl hooks
    def train_mode(self) -> None:
        """Set train mode (teacher in eval mode); as the runner calls this at the start of ``learn``, resync."""
        super().train_mode()
        if self.teacher is None or not self.teacher_loaded:
            raise ValueError(
                "Teacher model parameters not loaded. Load a teacher checkpoint (runner.load(path), a PPO "
                "checkpoint) before learn()."
            )
        self.teacher.eval()
        self.start_learning()

    def eval_mode(self) -> None:
        """Set evaluation mode for every model."""
        super().eval_mode()
        if self.teacher is not None:
            self.teacher.eval()

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Run student and teacher for every env; return the mixed action (the teacher's where the mask is set)."""
        core = self.mixing_core
        if core.pending:
            core.begin_iteration()
            self._coefs = (self.ppo_coef.value(core.iteration), self.imitation_coef.value(core.iteration))
        step = self.storage.step  # a Python int: act() labels this step of the storage
        self._labelled = step + 1 if step in (0, self._labelled) else self._labelled
        student_actions = super().act(obs)
        teacher_actions = self.teacher(obs).detach()  # stored raw; teacher_action_clip applies in update()
        mask = core.policy.step()
        stored = obs.copy()  # shallow: the env's TensorDict is left as it is
        stored.set(LABEL_KEY, teacher_actions)
        stored.set(DRIVEN_KEY, mask.unsqueeze(-1).to(teacher_actions.dtype))
        if self.expert_stats is not None:
            stored.set(EXPERT_KEY, self.expert_stats.current().unsqueeze(-1).to(teacher_actions.dtype))
        self.transition.observations = stored
        if core.beta == 0.0:  # exactly stock PPO's transition
            return student_actions
        executed = core.policy.select(student_actions, teacher_actions)
        # off-policy where the teacher drove: store the executed action and the student's log-prob of it
        self.transition.actions = executed
        self.transition.actions_log_prob = self.actor.get_output_log_prob(executed).detach()
        return executed

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]
    ) -> None:
        """Record the step; renew episode-level draws of finished envs; reset a recurrent teacher."""
        self.mixing_core.on_env_step(dones, extras)
        super().process_env_step(obs, rewards, dones, extras)
        self.teacher.reset(dones)

    def update(self) -> dict[str, float]:
        """PPO with the imitation term; log and print the iteration's coefficients, beta and teacher fraction."""
        core = self.mixing_core
        if self.storage.step > self._labelled:  # e.g. a storage filled by hand: no labels, no who-drove flags
            raise RuntimeError(
                f"MixingDAggerPPO.update(): {self.storage.step - self._labelled} of the {self.storage.step} stored "
                "transitions were not recorded through act(), which stores the teacher's labels and who drove (the "
                "imitation term would read zeros). Fill the storage with alg.act(obs) then "
                "alg.process_env_step(obs, rewards, dones, extras) per step, as rsl_rl's OnPolicyRunner does."
            )
        observations = self.storage.observations
        # non-finite labels / executed actions raise before any gradient step: the labels are stored raw, so the
        # clip cannot hide an Inf (one reduction per update, nothing per env step)
        check_finite(observations[LABEL_KEY], self.storage.actions, self.teacher)
        if self.teacher_action_clip is not None:
            observations[LABEL_KEY].clamp_(-self.teacher_action_clip, self.teacher_action_clip)
        experts = self.expert_stats
        if experts is not None:
            experts.check()  # selector values that named no expert raise, before any gradient step
        ppo_coef, imitation_coef = self._coefs
        dist = torch.distributed
        all_reduce = dist.all_reduce if self.is_multi_gpu and dist.is_available() and dist.is_initialized() else None
        weights, recipe = self.guidance.before_update(
            self.storage, observations[LABEL_KEY], core.iteration, all_reduce, self.max_grad_norm, self.gpu_world_size
        )
        if weights is not None:
            observations[WEIGHT_KEY].copy_(weights)
        warmup = recipe.get("ppo_warmup", 1.0)
        self._set_learning_rate()
        loss_dict, stats = self._ppo_imitation_update(
            ppo_coef * warmup, imitation_coef, mixed=core.beta > 0.0, advised=weights is not None
        )
        take_estimator = getattr(getattr(self, "_raw_actor", self.actor), "take_estimator_stats", None)
        if take_estimator is not None:  # dagmix.models' EstimatorRNNModel: its head's loss sum and count
            stats = torch.cat([stats, take_estimator()])
        if experts is not None:
            stats = torch.cat([stats, experts.take(observations[EXPERT_KEY])])
        if all_reduce is not None:
            all_reduce(stats)  # every rank logs the same sums
        values = stats.tolist()  # the one extra host read
        imitation_sum, imitation_count, driven_sum, driven_count = values[:4]
        loss_dict["imitation"] = imitation_sum / max(imitation_count, 1.0)
        check_loss(loss_dict, self.teacher)  # e.g. labels so large that their square overflows
        metrics = {
            SCALAR_BETA: core.beta,
            SCALAR_TEACHER_FRACTION: driven_sum / max(driven_count, 1.0),
            SCALAR_IMITATION_COEF: imitation_coef,
            SCALAR_PPO_COEF: ppo_coef,
            **{f"Distillation/{name}": value for name, value in recipe.items()},
        }
        extra = values[4:]
        if take_estimator is not None:
            (estimator_sum, estimator_count), extra = extra[:2], extra[2:]
            if estimator_count > 0:
                metrics[SCALAR_ESTIMATOR_LOSS] = estimator_sum / estimator_count
        if experts is not None:
            metrics.update(experts.metrics(extra))
        core.end_iteration(metrics, loss_dict, f"Imitation coef: {imitation_coef:.4g}, PPO coef: {ppo_coef:.4g}")
        return loss_dict

    def broadcast_parameters(self) -> None:
        """Broadcast rank 0's actor, critic (rsl_rl) and advisor head to every rank (rsl_rl's learn() calls this)."""
        super().broadcast_parameters()
        if self.guidance.advisor is not None:
            for tensor in self.guidance.advisor.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def _imitation_loss(self, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Return the imitation loss of the actor's current output distribution against the teacher's ``labels``.

        ``weights`` (one per sample) weigh each sample's loss (its mean over action dimensions) in the mean.
        """
        if weights is not None:
            return (self._imitation_per_sample(labels) * weights).mean()  # negation and products are exact
        if self.imitation_loss == "gaussian_nll":
            return -self.actor.get_output_log_prob(labels).mean()
        loss = nn.functional.huber_loss if self.imitation_loss == "huber" else nn.functional.mse_loss
        return loss(self.actor.output_mean, labels)

    def _imitation_per_sample(self, labels: torch.Tensor) -> torch.Tensor:
        """Return each sample's imitation loss (shape (batch,); the mean over action dimensions) for logging."""
        if self.imitation_loss == "gaussian_nll":
            return -self.actor.get_output_log_prob(labels)
        mean = self.actor.output_mean
        if self.imitation_loss == "huber":
            return nn.functional.huber_loss(mean, labels, reduction="none").mean(-1)
        return (mean - labels).pow(2).mean(-1)

    def _ppo_imitation_update(
        self, ppo_coef: float, imitation_coef: float, mixed: bool, advised: bool = False
    ) -> tuple[dict[str, float], torch.Tensor]:
        """rsl_rl's ``PPO.update`` (5.4.2 / 5.5.x) with the imitation term and the who-drove masking.

        It follows ``rsl_rl.algorithms.PPO.update`` line for line; the differences are the ``ppo_coef`` factor on the
        actor's terms, the masked surrogate where the teacher drove, and the imitation term. With ``ppo_coef`` 1,
        ``imitation_coef`` 0 and no teacher-driven sample it performs exactly the same floating-point operations as
        rsl_rl's PPO (tests/test_dagger_ppo.py compares the weights bit for bit). Symmetry is refused in ``__init__``.

        Args:
            ppo_coef: Factor of the actor's PPO terms (surrogate and entropy bonus) this iteration; 0 drops them.
            imitation_coef: Factor of the imitation loss this iteration; 0 drops it from the gradient.
            mixed: Whether the teacher may have driven this rollout (beta > 0); then teacher-driven samples are
                masked out of the surrogate.
            advised: Whether the storage holds advisor weights ``w``: each sample's surrogate is then weighed by
                ``1 - w`` and its imitation loss by ``max(imitation_floor, w)``.

        Returns:
            The loss dict (``value``, ``surrogate``, ``entropy``, ``rnd`` if used) and a tensor on the device:
            (imitation loss sum over mini-batches, mini-batches, teacher-driven samples, samples).
        """
        mean_value_loss = 0.0
        mean_surrogate_loss = 0.0
        mean_entropy = 0.0
        mean_rnd_loss = 0.0 if self.rnd else None
        imitation_sum = torch.zeros((), device=self.device)
        if self.actor.is_recurrent or self.critic.is_recurrent:
            generator = self.storage.recurrent_mini_batch_generator(self.num_mini_batches, self.num_learning_epochs)
        else:
            generator = self.storage.mini_batch_generator(self.num_mini_batches, self.num_learning_epochs)

        for batch in generator:
            original_batch_size = batch.observations.batch_size[0]
            if self.normalize_advantage_per_mini_batch:
                with torch.no_grad():
                    batch.advantages = (batch.advantages - batch.advantages.mean()) / (batch.advantages.std() + 1e-8)
            with torch.amp.autocast(
                device_type=torch.device(self.device).type, enabled=self._mixed_precision, dtype=torch.bfloat16
            ):
                self.actor(
                    batch.observations, masks=batch.masks, hidden_state=batch.hidden_states[0], stochastic_output=True
                )
                actions_log_prob = self.actor.get_output_log_prob(batch.actions)
                values = self.critic(batch.observations, masks=batch.masks, hidden_state=batch.hidden_states[1])
                distribution_params = tuple(p[:original_batch_size] for p in self.actor.output_distribution_params)
                entropy = self.actor.output_entropy[:original_batch_size]

                if self.desired_kl is not None and self.schedule == "adaptive":  # rsl_rl's KL-adaptive rate
                    with torch.inference_mode():
                        kl = self.actor.get_kl_divergence(batch.old_distribution_params, distribution_params)
                        kl_mean = torch.mean(kl)
                        if self.is_multi_gpu:
                            torch.distributed.all_reduce(kl_mean, op=torch.distributed.ReduceOp.SUM)
                            kl_mean /= self.gpu_world_size
                        if self.gpu_global_rank == 0:
                            if kl_mean > self.desired_kl * 2.0:
                                self.learning_rate = max(self.guidance.lr_floor, self.learning_rate / 1.5)
                            elif kl_mean < self.desired_kl / 2.0 and kl_mean > 0.0:
                                self.learning_rate = min(1e-2, self.learning_rate * 1.5)
                        if self.is_multi_gpu:
                            lr_tensor = torch.tensor(self.learning_rate, device=self.device)
                            torch.distributed.broadcast(lr_tensor, src=0)
                            self.learning_rate = lr_tensor.item()
                        for param_group in self.optimizer.param_groups:
                            param_group["lr"] = self.learning_rate

                log_ratio = actions_log_prob - torch.squeeze(batch.old_actions_log_prob)
                if mixed:  # teacher-driven samples leave the surrogate (ratio 1 there, so no overflow, zero gradient)
                    student_driven = _sample_field(batch, DRIVEN_KEY).squeeze(-1) < 0.5
                    log_ratio = torch.where(student_driven, log_ratio, torch.zeros_like(log_ratio))
                ratio = torch.exp(log_ratio)
                surrogate = -torch.squeeze(batch.advantages) * ratio
                surrogate_clipped = -torch.squeeze(batch.advantages) * torch.clamp(
                    ratio, 1.0 - self.clip_param, 1.0 + self.clip_param
                )
                per_sample = torch.max(surrogate, surrogate_clipped)
                if advised:  # per state: PPO where the teacher cannot be copied, imitation where it can
                    advice = _sample_field(batch, WEIGHT_KEY).squeeze(-1)
                    per_sample = per_sample * (1.0 - advice)
                if mixed:
                    kept = student_driven.to(per_sample.dtype)
                    surrogate_loss = (per_sample * kept).sum() / kept.sum().clamp_min(1.0)
                else:
                    surrogate_loss = per_sample.mean()

                if self.use_clipped_value_loss:
                    value_clipped = batch.values + (values - batch.values).clamp(-self.clip_param, self.clip_param)
                    value_losses = (values - batch.returns).pow(2)
                    value_losses_clipped = (value_clipped - batch.returns).pow(2)
                    value_loss = torch.max(value_losses, value_losses_clipped).mean()
                else:
                    value_loss = (batch.returns - values).pow(2).mean()

                if ppo_coef > 0.0:
                    loss = (
                        ppo_coef * surrogate_loss
                        + self.value_loss_coef * value_loss
                        - ppo_coef * self.entropy_coef * entropy.mean()
                    )
                else:
                    loss = self.value_loss_coef * value_loss
                labels = _sample_field(batch, LABEL_KEY)
                if imitation_coef > 0.0:
                    imitation = self._imitation_loss(labels)
                    if advised:  # the gradient from the weighted loss; the plain loss is logged
                        floor = self.guidance.imitation_floor
                        loss = loss + imitation_coef * self._imitation_loss(labels, advice.clamp_min(floor))
                    else:
                        loss = loss + imitation_coef * imitation
                else:
                    with torch.no_grad():
                        imitation = self._imitation_loss(labels)
                imitation_sum += imitation.detach().float()
                if self.expert_stats is not None:
                    with torch.no_grad():
                        per_sample = self._imitation_per_sample(labels)
                    self.expert_stats.add_loss(per_sample, _sample_field(batch, EXPERT_KEY))

                rnd_loss = self.rnd.compute_loss(batch.observations[:original_batch_size]) if self.rnd else None

            self.optimizer.zero_grad()
            loss.backward()
            if self.rnd:
                self.rnd.optimizer.zero_grad()
                rnd_loss.backward()
            if self.is_multi_gpu:
                self.reduce_parameters()
            nn.utils.clip_grad_norm_(self.actor.parameters(), self.max_grad_norm)
            nn.utils.clip_grad_norm_(self.critic.parameters(), self.max_grad_norm)
            self.optimizer.step()
            if self.rnd:
                self.rnd.optimizer.step()

            mean_value_loss += value_loss.item()
            mean_surrogate_loss += surrogate_loss.item()
            mean_entropy += entropy.mean().item()
            if mean_rnd_loss is not None:
                mean_rnd_loss += rnd_loss.item()

        if compat.NORMALIZER_UPDATED_IN_UPDATE:  # 5.5: once per update; 5.4: on every process_env_step
            obs = self.storage.observations.flatten(0, 1)
            self.actor.update_normalization(obs)
            self.critic.update_normalization(obs)
            if self.rnd:
                self.rnd.update_normalization(obs)

        num_updates = self.num_learning_epochs * self.num_mini_batches
        loss_dict = {
            "value": mean_value_loss / num_updates,
            "surrogate": mean_surrogate_loss / num_updates,
            "entropy": mean_entropy / num_updates,
        }
        if mean_rnd_loss is not None:
            loss_dict["rnd"] = mean_rnd_loss / num_updates
        driven = self.storage.observations[DRIVEN_KEY]
        stats = torch.stack(
            [
                imitation_sum,
                torch.tensor(float(num_updates), device=self.device),
                driven.sum().float(),
                torch.tensor(float(driven.numel()), device=self.device),
            ]
        )
        self.storage.clear()
        return loss_dict, stats

    # ------------------------------------------------------------------ checkpoints
    def describe(self) -> str:
        """Return the one-line summary of the settings that ``dagmix distill`` prints."""
        return (
            f"MixingDAggerPPO: mixing {self.beta_schedule.describe()}, granularity={self.mixing_cfg.granularity}; "
            f"imitation_coef {self.imitation_coef.describe()}; ppo_coef {self.ppo_coef.describe()}; "
            f"imitation_loss {self.imitation_loss}; learning rate {self._describe_learning_rate()}"
        )

    def _describe_learning_rate(self) -> str:
        """Return the learning-rate schedule in words, e.g. ``cosine 0.001 -> 0.0001 by the end of the run``."""
        lr = self.lr_schedule
        auto = " (auto)" if self._learning_rate_auto else ""
        if not lr.decays:
            rate = f"{self._base_learning_rate:g}"
            kind = "KL-adaptive from" if kl_adaptive(self.schedule, self.desired_kl) else "fixed"
            return f"{kind} {rate}{auto}"
        end = (
            "the end of the run" if lr.learning_rate_iterations is None else f"iteration {lr.learning_rate_iterations}"
        )
        hold = lr.learning_rate_decay_start_fraction
        span = "the run" if lr.learning_rate_iterations is None else "the way"  # the fraction is of the decay's span
        start = f" from {hold:.3g} of {span}" if hold > 0 else ""
        rates = f"{self._base_learning_rate:g} -> {lr.min_learning_rate:g}"
        return f"{lr.learning_rate_schedule} {rates}{start} by {end}{auto}"

    def save(self) -> dict:
        """Return rsl_rl's PPO checkpoint dict plus ``teacher_state_dict`` and the state under ``"dagmix"``."""
        check_student_weights(self._raw_actor)  # nothing non-finite is saved
        saved = super().save()
        saved["teacher_state_dict"] = self.teacher.state_dict()
        saved[CHECKPOINT_KEY] = self.mixing_core.state_dict(
            algorithm="MixingDAggerPPO",
            guidance=self.guidance.state_dict(),
            model=self.model_cfg,  # eval and export rebuild the actor and teacher from the file alone
            **self._coefficient_schedules(),
        )
        return saved

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Load a PPO checkpoint into the teacher, or resume a MixingDAggerPPO checkpoint (models, schedules, masks).

        Without ``load_cfg``: a checkpoint with ``actor_state_dict`` but no ``teacher_state_dict`` (rsl_rl PPO) loads
        the teacher only and starts at iteration 0, as rsl_rl's Distillation does; one with both resumes everything.
        ``load_cfg`` may name ``actor``, ``critic``, ``optimizer``, ``iteration``, ``rnd`` and ``teacher``.
        """
        has_actor, has_teacher = "actor_state_dict" in loaded_dict, "teacher_state_dict" in loaded_dict
        if load_cfg is None:
            if has_actor and has_teacher:
                load_cfg = {"actor": True, "critic": True, "optimizer": True, "iteration": True, "rnd": True}
                load_cfg["teacher"] = True
            elif has_actor:
                load_cfg = {"teacher": True, "iteration": False}
            else:
                hint = (
                    " It looks like a distillation checkpoint: pass it as init_student (or --init_student) and load "
                    "the teacher from its PPO checkpoint."
                    if "student_state_dict" in loaded_dict
                    else ""
                )
                raise ValueError(
                    f"MixingDAggerPPO loads a PPO checkpoint (the teacher: 'actor_state_dict') or its own checkpoint "
                    f"(to resume: 'actor_state_dict' and 'teacher_state_dict'); this one has no 'actor_state_dict' "
                    f"(keys: {sorted(loaded_dict)}).{hint}"
                )
        resumed = super().load(loaded_dict, {k: v for k, v in load_cfg.items() if k != "teacher"}, strict)
        if load_cfg.get("teacher"):
            state = loaded_dict["teacher_state_dict"] if has_teacher else loaded_dict["actor_state_dict"]
            self.teacher.load_state_dict(state, strict=strict)
            self.teacher_loaded = True
            critic = None if has_teacher else loaded_dict.get("critic_state_dict")  # a PPO checkpoint's critic
            if not has_teacher and self.guidance.load_teacher_critic(self._raw_critic, critic):
                if self.mixing_core.console:
                    print("[dagmix] critic initialised from the teacher's PPO checkpoint")
        if resumed:
            state, it = loaded_dict.get(CHECKPOINT_KEY), int(loaded_dict["iter"])
            self.mixing_core.resume(state, it, "MixingDAggerPPO", self._coefficient_schedules())
            self.guidance.load_state_dict((state or {}).get("guidance", {}))
        return bool(resumed)

    def _coefficient_schedules(self) -> dict[str, str]:
        """Return the descriptions of the coefficient schedules, as stored in ``checkpoint["dagmix"]``."""
        return {"imitation_coef": self.imitation_coef.describe(), "ppo_coef": self.ppo_coef.describe()}
