"""Default rsl_rl train configs per built-in task, and the shipped teacher."""

from __future__ import annotations

import copy
import os
from typing import Any

ASSETS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "assets")  # the clone, not a link to it

_MLP = {"class_name": "MLPModel", "hidden_dims": [64, 64], "activation": "elu", "obs_normalization": True}

TEACHER_MODEL: dict[str, Any] = {
    **_MLP,
    "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0},
}
"""The PPO actor (and, loaded from its checkpoint, the distillation teacher)."""

STUDENT_MODEL: dict[str, Any] = {
    **_MLP,
    "class_name": "RNNModel",
    "rnn_type": "gru",
    "rnn_hidden_dim": 64,
    "rnn_num_layers": 1,
    "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 0.1},
}
"""The default student: a GRU (the student observes no velocity, so it needs memory)."""


DISTILL_RNN_HIDDEN_DIM = 128
"""The GRU size of every built-in task's student (distillation and MixingDAggerPPO's actor, so that a distilled
student initialises the actor). On ``quadcopter`` at the demo's 240 iterations, 5 seeds: the last student 0.998-1.005
of the teacher's return, success 0.995-1.000 (benchmarks/RESULTS.md, "The demo in five minutes"); ``quadcopter_thrown``:
0.970, 64 units 0.937 ("Stable students"). The larger quadcopter student is one override away
(``student.rnn_hidden_dim=256``, the default until the demo had to fit in five minutes): its last student stays
within 0.007 of its best periodic evaluation in 8 seeds (128 units: up to 0.013), at twice the training time
("Stable students: the defaults")."""


QUADCOPTER_STUDENT_TASKS = ("quadcopter", "quadcopter_experts")
"""Tasks with the ``quadcopter`` student's settings (its weight average, ``ema_decay`` 0.99): the student observes its
velocity estimate. ``quadcopter_experts``' student has them untested there (no committed results yet)."""


def student_model(kind: str = "gru", rnn_hidden_dim: int | None = None) -> dict[str, Any]:
    """Return a fresh copy of the student model config: ``gru`` (the default) or ``mlp`` (same MLP, no memory).

    ``rnn_hidden_dim`` replaces the GRU's 64 units. A copy every call: rsl-rl-lib 5.4 pops ``class_name`` from
    model config dicts, so they are never shared.
    """
    if kind not in ("gru", "mlp"):
        raise ValueError(f"student kind={kind!r} is not one of 'gru', 'mlp'")
    model = copy.deepcopy(STUDENT_MODEL)
    if rnn_hidden_dim is not None:
        model["rnn_hidden_dim"] = rnn_hidden_dim
    if kind == "mlp":
        model = {k: v for k, v in model.items() if not k.startswith("rnn_")} | {"class_name": "MLPModel"}
    return model


def filter_student(task: str, model: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``task``'s GRU student config ``model`` as ``dagmix.models:FilterRNNModel`` (docs/estimator.md).

    The benchmarks' ``--student filter``; a task whose student is not a GRU raises, naming it.
    """
    from dagmix.mixing.estimator_schema import FILTER_CLASS_NAME

    if model.get("rnn_type") != "gru":
        raise ValueError(
            f"--student filter makes the task's GRU student a FilterRNNModel; {task}'s student is "
            f"{model.get('class_name')!r} with no GRU."
        )
    return {**copy.deepcopy(model), "class_name": FILTER_CLASS_NAME}


CUE_DOORS_TEACHER_ITERATIONS = 50
"""PPO iterations of the ``cue_doors`` teacher (``teacher_train_cfg``)."""
QUADCOPTER_DISTILL_ITERATIONS = 240
"""Distillation iterations of ``quadcopter`` (the demo; the teacher drives the first fifth): 23.6 M env steps at
4096 envs, so that ``bash scripts/demo.sh`` ends within five minutes on two CPU cores (benchmarks/RESULTS.md, "The
demo in five minutes"). The other quadcopter tasks keep 300 (29.5 M env steps), the budget of their tables."""

CUE_DOORS_DISTILL_ITERATIONS = 100
"""Distillation iterations of ``cue_doors`` (``distill_train_cfg``); the teacher drives the first fifth."""
CUE_DOORS_DAGGER_PPO_ITERATIONS = 100
"""MixingDAggerPPO iterations of ``cue_doors`` (``dagger_ppo_train_cfg``)."""


def two_stage_phase1(iterations: int) -> int:
    """Return the teacher's iterations in a two-stage distillation of ``iterations``: the first fifth, at least 1."""
    return max(1, iterations // 5)


MLP_STUDENT_TASKS = ("cue_doors",)
"""Tasks whose student is an MLP: ``cue_doors`` latches the cue in the student's observation, so it needs no memory."""

SHARED_TEACHERS = {"quadcopter_blind": "quadcopter"}
"""Tasks that use another task's shipped teacher (the same teacher observations and dynamics)."""

EXPERT_TASKS: dict[str, tuple[str, ...]] = {"quadcopter_experts": ("quadcopter", "quadcopter_thrown")}
"""Multi-expert tasks and, in expert order, the tasks whose shipped teachers are their experts: ``quadcopter_experts``'
expert 0 is the ``quadcopter`` teacher (its level starts), expert 1 the ``quadcopter_thrown`` teacher (its thrown
starts). Their ``teacher`` section is a ``dagmix.models:MultiTeacherModel`` (:func:`expert_teacher_section`)."""

EXPERT_SELECTOR_GROUP = "expert_id"
"""The observation group with each env's expert in the multi-expert tasks."""


def expert_teacher_section(task: str) -> dict[str, Any]:
    """Return a fresh ``teacher`` section of a multi-expert task: its experts, their shipped checkpoints, selector.

    Every expert is the shipped PPO actor (``TEACHER_MODEL``) reading the ``teacher`` group; the checkpoints are
    absolute paths, loaded when the model is built (no teacher ``--checkpoint``).
    """
    from dagmix.mixing.multi_teacher_schema import MULTI_TEACHER_CLASS_NAME

    experts = EXPERT_TASKS[task]
    return {
        "class_name": MULTI_TEACHER_CLASS_NAME,
        "teachers": [copy.deepcopy(TEACHER_MODEL) for _ in experts],
        "checkpoints": [shipped_teacher(t) for t in experts],
        "selector_group": EXPERT_SELECTOR_GROUP,
    }


def task_student_model(task: str) -> dict[str, Any]:
    """Return a fresh copy of ``task``'s default student (distillation) and MixingDAggerPPO actor config."""
    if task in MLP_STUDENT_TASKS:
        return student_model("mlp")
    return student_model(rnn_hidden_dim=DISTILL_RNN_HIDDEN_DIM)


def shipped_teacher(task: str) -> str:
    """Return the path of the teacher checkpoint shipped for ``task``; raise if there is none."""
    if task in EXPERT_TASKS:
        raise ValueError(
            f"Task {task!r} has several experts (the shipped teachers of {', '.join(EXPERT_TASKS[task])}), loaded "
            "from its teacher section's checkpoints, not one teacher checkpoint."
        )
    path = os.path.join(ASSETS, f"{SHARED_TEACHERS.get(task, task)}_teacher.pt")
    if not os.path.isfile(path):
        raise ValueError(f"No teacher is shipped for task {task!r}; pass --checkpoint PATH (a PPO checkpoint).")
    return path


def teacher_train_cfg(task: str) -> dict[str, Any]:
    """Return the rsl_rl PPO train config used to train the privileged teacher."""
    cfg = {
        "experiment_name": f"{task}_teacher",
        "run_name": "",
        "num_steps_per_env": 24,
        "max_iterations": 200,
        "save_interval": 50,
        "seed": 0,
        "obs_groups": {"actor": ["teacher"], "critic": ["teacher"]},
        "algorithm": {
            "class_name": "PPO",
            "learning_rate": 5e-4,
            "schedule": "adaptive",
            "desired_kl": 0.01,
            "num_learning_epochs": 5,
            "num_mini_batches": 4,
            "gamma": 0.99,
            "lam": 0.95,
            "entropy_coef": 0.0,
            "clip_param": 0.2,
            "max_grad_norm": 1.0,
        },
        "actor": copy.deepcopy(TEACHER_MODEL),
        "critic": copy.deepcopy(_MLP),
        "logger": "tensorboard",
    }
    if task == "cue_doors":  # about 3 steps to the door: success 1.0 after 10 iterations (1024 envs)
        cfg["max_iterations"] = CUE_DOORS_TEACHER_ITERATIONS
    return cfg


def distill_train_cfg(task: str) -> dict[str, Any]:
    """Return the rsl_rl distillation train config with MixingDistillation (two-stage by default)."""
    cfg = {
        "experiment_name": f"{task}_distillation",
        "run_name": "",
        "num_steps_per_env": 24,
        "max_iterations": 300,
        "save_interval": 50,
        "seed": 0,
        "obs_groups": {"student": ["policy"], "teacher": ["teacher"]},
        "algorithm": {
            "class_name": "dagmix.algorithms:MixingDistillation",
            "num_learning_epochs": 1,
            # 12-step truncated BPTT, a cosine decay to 2e-4 and a weight average: the setting measured in
            # benchmarks/RESULTS.md, "Stable students" (the quadcopter's default until then: 4, constant, none).
            # The quadcopter's average is slower (0.99; RESULTS.md, "A student with a velocity estimate");
            # quadcopter_thrown keeps the 0.9 its table was made with.
            "gradient_length": 12,
            "learning_rate": 2e-3,
            "max_grad_norm": 1.0,
            "loss_type": "mse",
            "teacher_action_clip": 1.0,
            "mixing": {"schedule": "two_stage", "phase1_iterations": 60, "granularity": "step", "assignment": "random"},
            "learning_rate_schedule": "cosine",
            "min_learning_rate": 2e-4,
            "warmup_iterations": 0,
            "learning_rate_iterations": None,  # the decay ends with the run (learn()'s last iteration)
            "learning_rate_decay_start_fraction": 0.0,
            # quadcopter_blind (the student before the velocity estimate) keeps the 0.9 its results were made with
            "ema_decay": 0.99 if task in QUADCOPTER_STUDENT_TASKS else 0.9,
            # listed at its default (off) so that `key=value` overrides can set it
            "replay": {"iterations": 0, "ratio": 0.5, "max_memory_gb": None},
        },
        "student": task_student_model(task),
        "teacher": expert_teacher_section(task) if task in EXPERT_TASKS else copy.deepcopy(TEACHER_MODEL),
        "logger": "tensorboard",
    }
    if task == "cue_doors":
        cfg["max_iterations"] = CUE_DOORS_DISTILL_ITERATIONS
        cfg["algorithm"]["mixing"]["phase1_iterations"] = two_stage_phase1(CUE_DOORS_DISTILL_ITERATIONS)
    elif task == "quadcopter":
        cfg["max_iterations"] = QUADCOPTER_DISTILL_ITERATIONS
        cfg["algorithm"]["mixing"]["phase1_iterations"] = two_stage_phase1(QUADCOPTER_DISTILL_ITERATIONS)
    return cfg


def dagger_ppo_train_cfg(task: str) -> dict[str, Any]:
    """Return the rsl_rl OnPolicyRunner config with MixingDAggerPPO at its defaults: the teacher-guided recipe.

    The actor is the distillation student (so a distilled student initialises it: ``--init_student``), the critic
    reads the privileged ``teacher`` group (``critic`` on ``cue_doors``, which adds the latched cue), and the teacher
    section matches the shipped PPO teacher. The algorithm keys beyond rsl_rl's PPO are MixingDAggerPPO's defaults
    (docs/dagger_ppo.md): imitation and PPO weighed per state by the advisor head, the critic warm-up, the student
    driving; a fixed learning rate, which ``learning_rate_schedule="auto"`` holds for 0.67 of the run and then
    decays by a cosine to a tenth.
    """
    cfg = teacher_train_cfg(task)
    cfg.update(experiment_name=f"{task}_dagger_ppo", max_iterations=300)
    cfg["obs_groups"] = {"actor": ["policy"], "critic": ["teacher"], "teacher": ["teacher"]}
    cfg["algorithm"].update(
        {
            "class_name": "dagmix.algorithms:MixingDAggerPPO",
            # a fixed rate: the KL-adaptive one (the teacher's) collapses to 1e-5 while the imitation term moves the
            # low-std student's mean (measured: 0.65 vs 0.93 of the teacher's return, one seed, 200 iterations)
            "schedule": "fixed",
            "learning_rate": 1e-3,
            "teacher_action_clip": 1.0,
            "mixing": {"schedule": "student_only"},  # MixingDAggerPPO's default, listed for --phase1_iterations
        }
    )
    cfg["actor"] = task_student_model(task)  # the distillation student: a distilled student initialises it
    cfg["teacher"] = expert_teacher_section(task) if task in EXPERT_TASKS else copy.deepcopy(TEACHER_MODEL)
    if task == "cue_doors":
        cfg["obs_groups"]["critic"] = ["critic"]  # the student's value depends on whether it has seen the cue
        # PPO must explore to find the cue: a wide start and an entropy bonus (as PPO without a teacher learns it)
        cfg["actor"]["distribution_cfg"]["init_std"] = 1.0
        cfg["algorithm"]["entropy_coef"] = 0.01
        cfg["max_iterations"] = CUE_DOORS_DAGGER_PPO_ITERATIONS
    return cfg
