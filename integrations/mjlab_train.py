"""mjlab's ``train`` command with dagmix's variants registered (the same flags as mjlab's).

    python -m dagmix.integrations.mjlab_train Mjlab-Cartpole-Balance-Dagmix \
        --agent.teacher-checkpoint logs/rsl_rl/cartpole/RUN/model_299.pt \
        --agent.algorithm.mixing.schedule two_stage --agent.algorithm.mixing.phase1-iterations 50

Registered here: ``Mjlab-Cartpole-Balance-Dagmix`` and ``Mjlab-Cartpole-Swingup-Dagmix`` (distillation into a GRU
student that sees the cart position and the pole angle, no velocities), and ``Mjlab-Cartpole-Balance-Dagmix-DAggerPPO``
and ``Mjlab-Cartpole-Swingup-Dagmix-DAggerPPO`` (the same student trained by MixingDAggerPPO, e.g. from the distilled
checkpoint: ``--agent.algorithm.init-student``; docs/dagger_ppo.md). Register your own variants with
:func:`dagmix.integrations.mjlab_tasks.register_distillation_task` and ``register_dagger_ppo_task`` before calling
mjlab's ``main``.
"""

from __future__ import annotations

from collections.abc import Callable

from mjlab.rl import RslRlModelCfg
from mjlab.tasks import registry

from dagmix.integrations.mjlab_tasks import register_dagger_ppo_task, register_distillation_task

STUDENT_TERMS = ("cart_pos", "pole_angle")
"""The Cartpole student's observation terms: positions only."""

STUDENT = RslRlModelCfg(
    hidden_dims=(64, 64),
    obs_normalization=True,
    distribution_cfg={"class_name": "GaussianDistribution", "init_std": 0.1, "std_type": "scalar"},
    rnn_type="gru",
    rnn_hidden_dim=64,
    class_name="RNNModel",
)
"""A GRU student: without velocities it needs memory."""


def _register_cartpole_variants(suffix: str, register: Callable[..., object]) -> list[str]:
    """Register ``register(task_id, base, ...)`` for each Cartpole task as ``<base><suffix>`` (once); return the ids."""
    ids = []
    for base in ("Mjlab-Cartpole-Balance", "Mjlab-Cartpole-Swingup"):
        task_id = f"{base}{suffix}"
        if task_id not in registry.list_tasks():
            register(task_id, base, student_terms=STUDENT_TERMS, student=STUDENT)
        ids.append(task_id)
    return ids


def register_builtin_variants() -> list[str]:
    """Register the dagmix variants of mjlab's Cartpole tasks (once); return their ids."""
    return _register_cartpole_variants("-Dagmix", register_distillation_task)


def register_builtin_dagger_ppo_variants() -> list[str]:
    """Register the MixingDAggerPPO variants of mjlab's Cartpole tasks (once; the distillation variants' student)."""
    return _register_cartpole_variants("-Dagmix-DAggerPPO", register_dagger_ppo_task)


def main() -> None:
    """Register the variants, then run mjlab's train command line."""
    from mjlab.scripts.train import main as mjlab_train

    register_builtin_variants()
    register_builtin_dagger_ppo_variants()
    mjlab_train()


if __name__ == "__main__":
    main()
