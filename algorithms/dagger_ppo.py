"""MixingDAggerPPO: rsl_rl's PPO on the student plus a scheduled imitation loss and per-env beta mixing."""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from rsl_rl.algorithms import PPO
from tensordict import TensorDict

from dagmix.algorithms import _compat
from dagmix.algorithms._dagger_ppo_checkpoint import DAGGER_PPO_STATE_FORMAT_VERSION, load_dagmix_state, load_student
from dagmix.algorithms._dagger_ppo_update import ppo_imitation_update
from dagmix.algorithms.mixing_distillation import CHECKPOINT_KEY
from dagmix.algorithms.mixing_iterations import MixingRun
from dagmix.algorithms.phase_log import SCALAR_BETA, SCALAR_TEACHER_FRACTION, ExtrasLog, phase_lines
from dagmix.mixing.config import MixingConfig
from dagmix.mixing.dagger_ppo_schema import DAGGER_PPO_KEYS, validate_dagger_ppo
from dagmix.mixing.policy import MixingPolicy, reseed_value

SCALAR_IMITATION_COEF = "Distillation/imitation_coef"
SCALAR_PPO_COEF = "Distillation/ppo_coef"
LABEL_KEY = "dagmix_teacher_action"
"""Key of the teacher's action (the imitation label) in the rollout storage's observations."""
DRIVEN_KEY = "dagmix_teacher_driven"
"""Key of the who-drove flag (1.0: the teacher's action was executed) in the rollout storage's observations."""


_OWN_KEYS = DAGGER_PPO_KEYS
_PARENT_KEYS = set(inspect.signature(PPO.__init__).parameters) - {"self", "actor", "critic", "storage"}


class MixingDAggerPPO(MixingRun, PPO):
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
        mixing_policy: The per-env mask (``teacher_mask``: bool, shape (num_envs,), on the env's device).
        beta_schedule: The beta schedule (``schedule`` stays rsl_rl's learning-rate schedule).
        imitation_coef: The imitation coefficient schedule.
        ppo_coef: The PPO (policy-gradient) coefficient schedule.
    """

    teacher_loaded: bool = False

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
        **kwargs: Any,
    ) -> None:
        """Build the algorithm; rsl_rl's PPO keys (``learning_rate``, ``clip_param``, ...) pass through.

        Args:
            actor: The student (MLPModel or RNNModel with a distribution), reading its own observation groups.
            critic: The critic model (may read privileged groups).
            storage: rsl_rl's ``rl`` RolloutStorage; two buffers are added for the labels and the who-drove flags.
            teacher: The teacher model; :meth:`construct_algorithm` builds it from the config's ``teacher`` section.
            imitation_coef: Weight of the imitation loss: a number >= 0 or a schedule dict (see
                :class:`~dagmix.mixing.coefficients.CoefficientSchedule`).
            ppo_coef: Weight of the actor's PPO terms (clipped surrogate and entropy bonus), same forms; 0 is pure
                DAgger.
            imitation_loss: ``mse`` or ``huber`` between the student's mean action and the teacher's action, or
                ``gaussian_nll``: minus the student's log-likelihood of the teacher's action (trains the std too).
            mixing: Flat mixing dict, exactly as for MixingDistillation (adaptive kinds are not supported here).
            init_student: Path of a distillation checkpoint whose ``student_state_dict`` initialises the actor.
            teacher_action_clip: If set, the imitation label is clamped to [-clip, clip] (the executed action is not).
            phase_console_output: Print the phase lines and the switch banner (rank 0 only).
            **kwargs: rsl_rl PPO keys.
        """
        _compat.require_ppo_with_models("MixingDAggerPPO")
        for key in kwargs:
            if key not in _PARENT_KEYS:
                close = difflib.get_close_matches(key, [*_OWN_KEYS, *sorted(_PARENT_KEYS)], n=1, cutoff=0.7)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"Unknown algorithm key {key!r} for MixingDAggerPPO; its keys are {', '.join(_OWN_KEYS)} and "
                    f"rsl_rl's PPO keys.{hint}"
                )
        if kwargs.get("symmetry_cfg") is not None:
            raise ValueError(
                "symmetry_cfg is not supported by MixingDAggerPPO (the imitation labels would need mirroring too); "
                "set symmetry_cfg=None."
            )
        options = validate_dagger_ppo(
            {
                "imitation_coef": imitation_coef,
                "ppo_coef": ppo_coef,
                "imitation_loss": imitation_loss,
                "mixing": mixing,
                "init_student": init_student,
                "teacher_action_clip": teacher_action_clip,
                "phase_console_output": phase_console_output,
            }
        )
        self.imitation_coef = options.imitation_coef
        self.ppo_coef = options.ppo_coef
        self.imitation_loss = options.imitation_loss
        self.mixing_cfg = options.mixing
        self.beta_schedule = self.mixing_cfg.build_schedule()
        super().__init__(actor, critic, storage, **kwargs)
        self._mixed_precision = bool(getattr(self, "use_mixed_precision", False))  # rsl-rl-lib >= 5.5 only
        self.teacher_action_clip = options.teacher_action_clip
        self.phase_console_output = options.phase_console_output
        self.teacher: Any = None
        if teacher is not None:
            self.set_teacher(teacher)

        steps, num_envs = storage.num_transitions_per_env, storage.num_envs
        num_actions = storage.actions.shape[-1]
        # the labels and who-drove flags travel inside the stored observations, so rsl_rl's own mini-batch
        # generators (shuffled, or padded trajectories for recurrent models) hand them out aligned with each sample
        storage.observations.set(LABEL_KEY, torch.zeros(steps, num_envs, num_actions, device=self.device))
        storage.observations.set(DRIVEN_KEY, torch.zeros(steps, num_envs, 1, device=self.device))
        self.mixing_policy = MixingPolicy(
            num_envs,
            self.device,
            granularity=self.mixing_cfg.granularity,
            assignment=self.mixing_cfg.assignment,
            seed=self._rank_seed(self.mixing_cfg.seed) if self.mixing_cfg.seed is not None else reseed_value(0, 0),
        )
        self.init_student = init_student
        if init_student is not None:
            load_student(self, init_student)

        self.max_iterations: int | None = None
        self._iteration = 0  # iteration of the current / next rollout (the runner's `it`)
        self._runner_iteration = 0  # mirrors the runner's current_learning_iteration
        self._pending = True  # the next act() starts an iteration
        self._beta = 0.0
        self._coefs = (1.0, 0.0)  # (ppo, imitation) of the current iteration
        self._seen_positive_beta = False
        self._banner_printed = False
        self._extras_log = ExtrasLog()
        self.last_metrics: dict[str, float] = {}
        self.iteration_callbacks: list[Callable[[int, dict[str, float]], Mapping[str, float] | None]] = []
        """Called as ``fn(iteration, metrics)`` at the end of each update; a returned mapping of scalars is logged
        with the iteration's metrics (e.g. ``Eval/student_return``)."""

    # ------------------------------------------------------------------ construction
    @staticmethod
    def construct_algorithm(obs: TensorDict, env: Any, cfg: dict, device: str) -> MixingDAggerPPO:
        """Build actor, critic and storage through rsl_rl's PPO path, then the teacher from ``cfg["teacher"]``.

        The teacher is built with the global RNG state saved and restored (its weights come from the checkpoint),
        so a run draws exactly the random numbers stock PPO draws.
        """
        _compat.require_ppo_with_models("MixingDAggerPPO")
        if not isinstance(cfg.get("teacher"), Mapping) or "class_name" not in cfg["teacher"]:
            raise ValueError(
                "MixingDAggerPPO needs a 'teacher' model section in the train config (like 'actor', e.g. "
                "{'class_name': 'MLPModel', 'hidden_dims': [...], 'distribution_cfg': {...}}) matching the PPO "
                "checkpoint it is loaded from."
            )
        from rsl_rl.utils import resolve_callable, resolve_obs_groups

        cfg["obs_groups"] = resolve_obs_groups(obs, cfg["obs_groups"], ["actor", "critic", "teacher"])
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
        return alg

    def set_teacher(self, teacher: Any) -> None:
        """Use ``teacher`` (a model with this env's actions as output) as the teacher; it is never trained."""
        self.teacher = teacher.to(self.device)
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    # ------------------------------------------------------------------ schedules
    def coefficients_at(self, iteration: int) -> dict[str, float]:
        """Return ``{"beta", "imitation_coef", "ppo_coef"}`` at the runner's ``iteration``."""
        return {
            "beta": self.beta_schedule.beta(iteration),
            "imitation_coef": self.imitation_coef.value(iteration),
            "ppo_coef": self.ppo_coef.value(iteration),
        }

    @property
    def iteration(self) -> int:
        """The runner iteration of the current (or next) rollout."""
        return self._iteration

    def _begin_iteration(self) -> None:
        it = self._iteration
        values = self.coefficients_at(it)
        beta = values["beta"]
        self.mixing_policy.begin_iteration(beta, it)
        self._beta = beta
        self._coefs = (values["ppo_coef"], values["imitation_coef"])
        self._pending = False
        self._note_beta(beta, it)

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
        self._iteration = self._runner_iteration
        self._pending = True

    def eval_mode(self) -> None:
        """Set evaluation mode for every model."""
        super().eval_mode()
        if self.teacher is not None:
            self.teacher.eval()

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Run student and teacher for every env; return the mixed action (the teacher's where the mask is set)."""
        if self._pending:
            self._begin_iteration()
        student_actions = super().act(obs)
        teacher_actions = self.teacher(obs).detach()
        label = teacher_actions
        if self.teacher_action_clip is not None:
            label = teacher_actions.clamp(-self.teacher_action_clip, self.teacher_action_clip)
        mask = self.mixing_policy.step()
        stored = obs.copy()  # shallow: the env's TensorDict is left as it is
        stored.set(LABEL_KEY, label)
        stored.set(DRIVEN_KEY, mask.unsqueeze(-1).to(label.dtype))
        self.transition.observations = stored
        if self._beta == 0.0:  # exactly stock PPO's transition
            return student_actions
        executed = self.mixing_policy.select(student_actions, teacher_actions)
        # off-policy where the teacher drove: store the executed action and the student's log-prob of it
        self.transition.actions = executed
        self.transition.actions_log_prob = self.actor.get_output_log_prob(executed).detach()
        return executed

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, Any]
    ) -> None:
        """Record the step; renew episode-level draws of finished envs; reset a recurrent teacher."""
        self.mixing_policy.on_dones(dones)
        self._extras_log.note(extras)
        super().process_env_step(obs, rewards, dones, extras)
        self.teacher.reset(dones)

    def update(self) -> dict[str, float]:
        """PPO with the imitation term; log and print the iteration's coefficients, beta and teacher fraction."""
        it = self._iteration
        ppo_coef, imitation_coef = self._coefs
        loss_dict, stats = ppo_imitation_update(self, ppo_coef, imitation_coef, mixed=self._beta > 0.0)
        dist = torch.distributed
        if self.is_multi_gpu and dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)  # every rank logs the same sums
        imitation_sum, imitation_count, driven_sum, driven_count = stats.tolist()  # the one extra host read
        loss_dict["imitation"] = imitation_sum / max(imitation_count, 1.0)
        metrics = {
            SCALAR_BETA: self._beta,
            SCALAR_TEACHER_FRACTION: driven_sum / max(driven_count, 1.0),
            SCALAR_IMITATION_COEF: imitation_coef,
            SCALAR_PPO_COEF: ppo_coef,
        }
        for callback in self.iteration_callbacks:
            extra = callback(it, dict(metrics))
            if extra:
                metrics.update(extra)
        self.last_metrics = metrics
        self._extras_log.write(metrics)
        if self._console:
            lines = phase_lines(self.beta_schedule, it, self._beta)
            print("\n".join([*lines, f"Imitation coef: {imitation_coef:.4g}, PPO coef: {ppo_coef:.4g}"]))
        self._runner_iteration = it
        self._iteration = it + 1
        self._pending = True
        return loss_dict

    # ------------------------------------------------------------------ checkpoints
    def mixing_state_dict(self) -> dict[str, Any]:
        """Return the state stored under ``checkpoint["dagmix"]``."""
        from dagmix import __version__

        return {
            "format_version": DAGGER_PPO_STATE_FORMAT_VERSION,
            "dagmix_version": __version__,
            "algorithm": "MixingDAggerPPO",
            "mixing": self.mixing_cfg.to_dict(),
            "schedule": self.beta_schedule.describe(),
            "imitation_coef": self.imitation_coef.describe(),
            "ppo_coef": self.ppo_coef.describe(),
            "policy": self.mixing_policy.state_dict(),
        }

    def save(self) -> dict:
        """Return rsl_rl's PPO checkpoint dict plus ``teacher_state_dict`` and the state under ``"dagmix"``."""
        saved = super().save()
        saved["teacher_state_dict"] = self.teacher.state_dict()
        saved[CHECKPOINT_KEY] = self.mixing_state_dict()
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
                    f"MixingDAggerPPO loads a PPO checkpoint (the teacher) or its own checkpoint (to resume); this "
                    f"one has neither 'actor_state_dict' nor 'teacher_state_dict' (keys: {sorted(loaded_dict)}).{hint}"
                )
        resumed = super().load(loaded_dict, {k: v for k, v in load_cfg.items() if k != "teacher"}, strict)
        if load_cfg.get("teacher"):
            state = loaded_dict["teacher_state_dict"] if has_teacher else loaded_dict["actor_state_dict"]
            self.teacher.load_state_dict(state, strict=strict)
            self.teacher_loaded = True
        if resumed:
            it = int(loaded_dict["iter"])
            self._runner_iteration = self._iteration = it
            self._pending = True
            state = loaded_dict.get(CHECKPOINT_KEY)
            if state is None:
                self.mixing_policy.reseed(it)
            else:
                load_dagmix_state(self, state)
        return bool(resumed)
