"""The one place that knows about differences between supported rsl-rl-lib versions (3.0.1-3.3.x, 4.0.x, 5.4.2-5.5.x).

API differences are feature-detected from the installed rsl_rl, not read from its version number:

- 3.x (Isaac Lab 2.3 pins 3.0.1): one ``StudentTeacher`` module ``alg.policy`` holds both networks; the runner
  builds the algorithm in ``_construct_algorithm`` and saves ``alg.policy`` itself (the algorithm has no
  ``save``/``load``/``train_mode``); 3.0.1 resolves ``class_name`` with ``eval`` (``"pkg.mod:Cls"`` names
  arrive with ``resolve_callable`` in 3.3) and passes the storage through ``init_storage``.
- 4.x and 5.x: separate ``alg.student`` / ``alg.teacher`` models built by ``Distillation.construct_algorithm``;
  the runner saves ``alg.save()`` and loads with ``alg.load``.

:class:`DistillationBase` and :class:`RunnerMixin` give MixingDistillation and MixingDistillationRunner the
4.x/5.x surface on every supported version.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import sys
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

import rsl_rl.algorithms
import torch

from dagmix.algorithms import checkpoint_io

SUPPORTED = ">=3.0.1,<3.4 or ==4.0.* or >=5.4.2,<5.6"
"""The rsl-rl-lib versions dagmix is tested against: 3.0.1 (Isaac Lab 2.3), 3.3.0, 4.0.1, 5.4.2 (mjlab 1.6),
5.5.1 (Isaac Lab 3.0)."""

_RANGES = (((3, 0, 1), (3, 4, 0)), ((4, 0, 0), (4, 1, 0)), ((5, 4, 2), (5, 6, 0)))


def _parse(v: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in v.split(".")[:3])


try:
    RSL_RL_VERSION = version("rsl-rl-lib")
except PackageNotFoundError:  # pragma: no cover - rsl_rl installed from source without metadata
    RSL_RL_VERSION = "0.0.0"

_V = _parse(RSL_RL_VERSION)


def check_rsl_rl_version() -> None:
    """Raise ImportError with the fix when the installed rsl-rl-lib is outside the supported versions."""
    if _V == (0, 0, 0) or any(lo <= _V < hi for lo, hi in _RANGES):
        return
    raise ImportError(
        f"dagmix.algorithms supports rsl-rl-lib {SUPPORTED}, but {RSL_RL_VERSION} is installed. rsl-rl 2.x (the "
        "two-stage patch's version) and 5.0-5.4.1 are not supported; install a supported version, e.g. "
        "`pip install 'rsl-rl-lib==5.5.1'` (or 3.0.1 for Isaac Lab 2.3)."
    )


_Distillation = rsl_rl.algorithms.Distillation
_INIT_PARAMS = inspect.signature(_Distillation.__init__).parameters

STUDENT_TEACHER_POLICY = not hasattr(_Distillation, "construct_algorithm")
"""3.x: the algorithm holds one StudentTeacher module ``policy``; 4.x/5.x: ``student`` and ``teacher`` models."""

RESOLVES_CLASS_PATHS = hasattr(importlib.import_module("rsl_rl.utils"), "resolve_callable")
"""rsl_rl resolves ``class_name="pkg.mod:Cls"`` itself (3.3+); 3.0.1 uses ``eval`` on rsl_rl names only."""

NORMALIZER_UPDATED_IN_UPDATE = _V >= (5, 5, 0)
"""5.5: the normalizer is updated once per update() from the rollout; earlier: on every process_env_step (used by
MixingDAggerPPO's update)."""

HAS_MIXED_PRECISION = "use_mixed_precision" in _INIT_PARAMS
"""5.5 added ``use_mixed_precision`` to Distillation."""

NEW_DISTRIBUTION_CFG = (
    not STUDENT_TEACHER_POLICY
    and "distribution_cfg" in inspect.signature(importlib.import_module("rsl_rl.models").MLPModel.__init__).parameters
)
"""5.x models take ``distribution_cfg``; 4.x models ``stochastic=True, init_noise_std=...``; 3.x has no models."""


PPO_WITH_MODELS = NEW_DISTRIBUTION_CFG and "actor" in inspect.signature(rsl_rl.algorithms.PPO.__init__).parameters
"""5.x: PPO takes separate ``actor`` / ``critic`` models and builds them in ``construct_algorithm``
(what MixingDAggerPPO extends); 3.x has one ActorCritic module and 4.x another model and distribution API."""


def require_ppo_with_models(what: str) -> None:
    """Raise a ValueError naming the installed rsl-rl-lib and the fix where ``what`` cannot run (3.x and 4.x)."""
    if not PPO_WITH_MODELS:
        raise ValueError(
            f"{what} needs rsl-rl-lib 5.4.2-5.5.x (PPO with separate actor and critic models); rsl-rl-lib "
            f"{RSL_RL_VERSION} is installed. Install e.g. `pip install 'rsl-rl-lib==5.5.1'`, or use "
            "MixingDistillation, which runs on every supported version."
        )


def resolve_class(name: Any, package: Any) -> Any:
    """Resolve ``class_name``: a class, ``"pkg.mod:Cls"``, ``"pkg.mod.Cls"`` or a name in rsl_rl's ``package``."""
    if not isinstance(name, str):
        return name
    if ":" in name or "." in name:
        module, _, attr = name.rpartition(":") if ":" in name else name.rpartition(".")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    if package is None or not hasattr(package, name):
        where = f"not in {package.__name__}" if package is not None else "not an import path"
        raise ValueError(f"class_name={name!r} is {where}; use 'pkg.module:ClassName'.")
    return getattr(package, name)


if STUDENT_TEACHER_POLICY:
    from rsl_rl.storage import RolloutStorage

    _STORAGE_IN_INIT = "storage" in _INIT_PARAMS

    class DistillationBase(_Distillation):
        """rsl-rl 3.x ``Distillation`` with the 4.x/5.x methods dagmix uses (teacher_loaded, save/load, modes)."""

        def __init__(self, policy: Any, storage: Any, **kwargs: Any) -> None:
            """Args: policy: the StudentTeacher module; storage: the distillation RolloutStorage (3.0.1 too)."""
            if _STORAGE_IN_INIT:
                super().__init__(policy, storage, **kwargs)
            else:  # 3.0.1 creates its storage in init_storage(); dagmix hands it over here instead
                super().__init__(policy, **kwargs)
                self.storage = storage

        @property
        def teacher_loaded(self) -> bool:
            """Whether teacher parameters were loaded (3.x keeps the flag on the StudentTeacher module)."""
            return bool(self.policy.loaded_teacher)

        @teacher_loaded.setter
        def teacher_loaded(self, value: bool) -> None:
            self.policy.loaded_teacher = bool(value)

        def train_mode(self) -> None:
            """Student in train mode, teacher in eval mode (StudentTeacher.train does both)."""
            self.policy.train()

        def eval_mode(self) -> None:
            """Both networks in eval mode."""
            self.policy.eval()

        def get_policy(self) -> Any:
            """Return the StudentTeacher module (its ``act_inference`` runs the student)."""
            return self.policy

        def save(self) -> dict:
            """Return the 3.x checkpoint entries of the model and optimizer."""
            return {"model_state_dict": self.policy.state_dict(), "optimizer_state_dict": self.optimizer.state_dict()}

        def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
            """Load a 3.x PPO (teacher only) or distillation checkpoint; return whether training resumes."""
            resumed = self.policy.load_state_dict(loaded_dict["model_state_dict"], strict=strict)
            if resumed and (load_cfg or {}).get("optimizer", True):
                self.optimizer.load_state_dict(loaded_dict["optimizer_state_dict"])
            return bool(resumed)

    class RunnerMixin:
        """rsl-rl 3.x: construct, save and load through the algorithm, as the 4.x/5.x runners do."""

        def __init__(self, env: Any, train_cfg: dict, log_dir: str | None = None, device: str = "cpu") -> None:
            """Work on a deep copy of ``train_cfg`` (rsl-rl 3.x pops and writes keys of the config it is given)."""
            super().__init__(env, copy.deepcopy(train_cfg), log_dir, device)

        def _construct_algorithm(self, obs: Any) -> Any:
            """Build the StudentTeacher policy, the storage and the algorithm (``class_name`` may be a path)."""
            policy_cfg = dict(self.cfg["policy"])
            policy_class = resolve_class(policy_cfg.pop("class_name"), importlib.import_module("rsl_rl.modules"))
            policy = policy_class(obs, self.cfg["obs_groups"], self.env.num_actions, **policy_cfg).to(self.device)
            steps = self.cfg["num_steps_per_env"]
            storage = RolloutStorage("distillation", self.env.num_envs, steps, obs, [self.env.num_actions], self.device)
            alg_cfg = {k: v for k, v in self.cfg["algorithm"].items() if k not in ("class_name", "rnd_cfg")}
            alg_class = resolve_class(self.cfg["algorithm"]["class_name"], rsl_rl.algorithms)
            alg = alg_class(policy, storage, device=self.device, **alg_cfg, multi_gpu_cfg=self.multi_gpu_cfg)
            self.cfg["algorithm"]["rnd_cfg"] = None  # read by the 3.3 runner and logger; no RND in distillation
            if hasattr(alg, "configure_run"):
                alg.configure_run(max_iterations=self.cfg.get("max_iterations"), seed=self.cfg.get("seed"))
            alg.model_cfg = checkpoint_io.model_config(self.cfg)
            return alg

        def train_mode(self) -> None:
            """Run the algorithm's train_mode (the iteration sync); the 3.x runner calls this at the start of learn."""
            self.alg.train_mode()

        def save(self, path: str, infos: dict | None = None) -> None:
            """Save ``alg.save()`` with the iteration (3.x layout, plus the algorithm's extra entries), atomically."""
            checkpoint_io.save_runner(self, path, infos)
            _upload(self, path)

        def load(
            self,
            path: str,
            load_optimizer: bool = True,
            map_location: str | None = None,
            unsafe_load: bool = False,
        ) -> dict | None:
            """Load through ``alg.load`` (``weights_only=True`` unless ``unsafe_load``); resume a distillation run."""
            loaded = checkpoint_io.load_checkpoint(path, map_location, unsafe_load)
            return checkpoint_io.restore_runner(self, loaded, {"optimizer": load_optimizer}, True)

else:
    DistillationBase = _Distillation

    class RunnerMixin:
        """rsl-rl 4.x/5.x: the runner's save / load through checkpoint_io (a subclass's own, e.g. mjlab's, kept)."""

        def save(self, path: str, infos: dict | None = None) -> None:
            """Save as rsl_rl's runner does (``alg.save()``, ``iter``, ``infos``), written atomically."""
            upstream = _upstream_modules(self, "save")
            if not upstream:
                checkpoint_io.save_runner(self, path, infos)
                _upload(self, path)
                return
            # a runner subclass outside rsl_rl keeps its save, which calls torch.save itself (mjlab 1.6's, in
            # mjlab.rl.runner, adds its env state and gates the upload; another may end in rsl_rl's
            # OnPolicyRunner.save): the name `torch` in those modules (not torch.save) is replaced for this call
            with checkpoint_io.safe_torch_in(upstream):
                super().save(path, infos)  # type: ignore[misc]

        def load(
            self,
            path: str,
            load_cfg: dict | None = None,
            strict: bool = True,
            map_location: str | None = None,
            unsafe_load: bool = False,
        ) -> dict | None:
            """Load as rsl_rl's runner does, with ``weights_only=True`` unless ``unsafe_load``."""
            upstream = _upstream_modules(self, "load")
            if not upstream:
                loaded = checkpoint_io.load_checkpoint(path, map_location, unsafe_load)
                return checkpoint_io.restore_runner(self, loaded, load_cfg, strict)
            # mjlab's runner loads with its own torch.load(path, weights_only=False) (then migrates legacy keys and
            # restores its env state): the name `torch` in its module is replaced for this call only
            with checkpoint_io.safe_torch_in(upstream, unsafe_load):
                return super().load(path, load_cfg, strict, map_location)  # type: ignore[misc]

    def _upstream_modules(runner: Any, method: str) -> list[ModuleType]:
        """Return the modules of the runner classes after RunnerMixin that define ``method``, if one is not rsl_rl's.

        Empty when only rsl_rl's runners define it: their save / load are exactly what checkpoint_io does.
        """
        mro = type(runner).__mro__
        owners = [c for c in mro[mro.index(RunnerMixin) + 1 :] if method in vars(c)]
        if all(c.__module__.split(".")[0] == "rsl_rl" for c in owners):
            return []
        return [sys.modules[c.__module__] for c in owners]


def _upload(runner: Any, path: str) -> None:
    """Upload a saved checkpoint as the runner does (W&B / Neptune), on every supported rsl_rl."""
    logger = getattr(runner, "logger", None)
    if logger is not None and hasattr(logger, "save_model"):  # rsl_rl's Logger (3.3+)
        logger.save_model(path, runner.current_learning_iteration)
    elif getattr(runner, "logger_type", None) in ("neptune", "wandb") and not runner.disable_logs:  # 3.0.1
        runner.writer.save_model(path, runner.current_learning_iteration)


def raw_student(alg: rsl_rl.algorithms.Distillation | rsl_rl.algorithms.PPO) -> torch.nn.Module | None:
    """Return the uncompiled student module: ``_raw_student`` (5.4+), ``student`` (4.x), None on 3.x (``policy``)."""
    return getattr(alg, "_raw_student", getattr(alg, "student", None))


def raw_teacher(alg: rsl_rl.algorithms.Distillation | rsl_rl.algorithms.PPO) -> torch.nn.Module | None:
    """Return the uncompiled teacher module: ``_raw_teacher`` (5.4+), ``teacher`` (4.x), ``policy.teacher`` (3.x)."""
    teacher = getattr(alg, "_raw_teacher", None)
    if teacher is None:
        teacher = getattr(alg, "teacher", None)
    if teacher is None and hasattr(alg, "policy"):  # rsl-rl 3.x: one StudentTeacher module
        teacher = getattr(alg.policy, "teacher", None)
    return teacher


def set_teacher(alg: rsl_rl.algorithms.Distillation, teacher: torch.nn.Module) -> None:
    """Install ``teacher`` (5.4+: also ``_raw_teacher``; 3.x: the StudentTeacher's, unnormalized) as loaded."""
    if STUDENT_TEACHER_POLICY:
        alg.policy.teacher, alg.policy.teacher_obs_normalizer = teacher, torch.nn.Identity()
    else:
        alg.teacher = teacher
        if hasattr(alg, "_raw_teacher"):
            alg._raw_teacher = teacher
    mark_teacher_loaded(alg)


def mark_teacher_loaded(alg: rsl_rl.algorithms.Distillation) -> None:
    """Mark the algorithm's teacher as loaded (for a teacher that is not loaded from a checkpoint)."""
    alg.teacher_loaded = True


def distillation_model_cfg(
    hidden_dims: list[int],
    activation: str = "elu",
    init_std: float = 0.1,
    obs_normalization: bool = True,
    rnn_type: str | None = None,
    rnn_hidden_dim: int = 256,
    rnn_num_layers: int = 1,
    teacher: dict | None = None,
    student_groups: tuple[str, ...] = ("policy",),
    teacher_groups: tuple[str, ...] = ("teacher",),
) -> dict:
    """Return the model part of a distillation train config in the installed rsl-rl's format.

    4.x/5.x: ``obs_groups`` (``student``/``teacher`` sets), ``student`` (MLPModel, or RNNModel with ``rnn_type``)
    and ``teacher`` (``teacher`` if given, else an MLPModel with ``hidden_dims``). 3.x: ``obs_groups``
    (``policy``/``teacher`` sets) and one ``policy`` StudentTeacher(Recurrent) config; ``teacher`` is read for its
    ``hidden_dims`` / ``obs_normalization`` only.
    """
    teacher_cfg = teacher or {"class_name": "MLPModel", "hidden_dims": list(hidden_dims), "activation": activation}
    if STUDENT_TEACHER_POLICY:
        policy = {
            "class_name": "StudentTeacherRecurrent" if rnn_type else "StudentTeacher",
            "student_hidden_dims": list(hidden_dims),
            "teacher_hidden_dims": list(teacher_cfg.get("hidden_dims", hidden_dims)),
            "activation": activation,
            "init_noise_std": init_std,
            "student_obs_normalization": obs_normalization,
            "teacher_obs_normalization": bool(teacher_cfg.get("obs_normalization", False)),
        }
        if rnn_type:
            policy.update(rnn_type=rnn_type, rnn_hidden_dim=rnn_hidden_dim, rnn_num_layers=rnn_num_layers)
        return {"obs_groups": {"policy": list(student_groups), "teacher": list(teacher_groups)}, "policy": policy}
    student: dict[str, Any] = {
        "class_name": "RNNModel" if rnn_type else "MLPModel",
        "hidden_dims": list(hidden_dims),
        "activation": activation,
        "obs_normalization": obs_normalization,
    }
    if NEW_DISTRIBUTION_CFG:
        student["distribution_cfg"] = {"class_name": "GaussianDistribution", "init_std": init_std}
    else:
        student.update(stochastic=True, init_noise_std=init_std)
    if rnn_type:
        student.update(rnn_type=rnn_type, rnn_hidden_dim=rnn_hidden_dim, rnn_num_layers=rnn_num_layers)
    return {
        "obs_groups": {"student": list(student_groups), "teacher": list(teacher_groups)},
        "student": student,
        "teacher": dict(teacher_cfg),
    }
