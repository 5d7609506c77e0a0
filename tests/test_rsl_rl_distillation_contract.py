"""MixingDistillation passes rsl_rl's own algorithm-level Distillation checks, driven without a runner.

In the spirit of rsl_rl's tests/algorithms/test_distillation.py (main branch): an algorithm built directly from
models and a storage, the storage filled by hand, ``train_mode()`` and ``update()`` called directly; no teacher
checkpoint is loaded, as in those tests.
"""

from __future__ import annotations

import re

import pytest
import torch
from tensordict import TensorDict

from dagmix.algorithms import MixingDistillation, compat

pytestmark = pytest.mark.skipif(
    compat.STUDENT_TEACHER_POLICY, reason="rsl-rl 3.x has no separate student/teacher models"
)

NUM_ENVS, NUM_STEPS, OBS_DIM, NUM_ACTIONS = 4, 12, 8, 4


def _setup(gradient_length: int = 3, num_learning_epochs: int = 1):
    from rsl_rl.models import MLPModel
    from rsl_rl.storage import RolloutStorage

    torch.manual_seed(0)
    obs = TensorDict({"policy": torch.randn(NUM_ENVS, OBS_DIM)}, batch_size=[NUM_ENVS])
    groups = {"student": ["policy"], "teacher": ["policy"]}
    student = MLPModel(obs, groups, "student", NUM_ACTIONS, hidden_dims=[32, 32])
    teacher = MLPModel(obs, groups, "teacher", NUM_ACTIONS, hidden_dims=[32, 32])
    storage = RolloutStorage("distillation", NUM_ENVS, NUM_STEPS, obs, [NUM_ACTIONS])
    alg = MixingDistillation(
        student,
        teacher,
        storage,
        num_learning_epochs=num_learning_epochs,
        gradient_length=gradient_length,
        learning_rate=1e-3,
        phase_console_output=False,
    )
    return alg, obs


def _fill(alg: MixingDistillation, obs: TensorDict) -> None:
    from rsl_rl.storage import RolloutStorage

    for _ in range(NUM_STEPS):
        t = RolloutStorage.Transition()
        t.observations = obs
        t.hidden_states = (None, None)
        t.actions = alg.student(obs).detach()
        t.privileged_actions = alg.teacher(obs).detach()
        t.rewards = torch.randn(NUM_ENVS)
        t.dones = torch.zeros(NUM_ENVS)
        alg.storage.add_transition(t)


def test_the_behavior_loss_decreases_over_updates():
    alg, obs = _setup(gradient_length=3, num_learning_epochs=2)
    alg.train_mode()  # stock does not require a loaded teacher here
    losses = []
    for _ in range(5):
        _fill(alg, obs)
        losses.append(alg.update()["behavior"])
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("gradient_length", "epochs"), [(4, 1), (5, 2)])
def test_optimizer_steps_are_transitions_over_gradient_length_per_epoch(gradient_length, epochs):
    alg, obs = _setup(gradient_length=gradient_length, num_learning_epochs=epochs)
    alg.train_mode()
    _fill(alg, obs)
    steps = 0
    step = alg.optimizer.step

    def counting_step(*args, **kwargs):
        nonlocal steps
        steps += 1
        return step(*args, **kwargs)

    alg.optimizer.step = counting_step
    alg.update()
    assert steps == epochs * (NUM_STEPS // gradient_length)


def test_update_changes_the_student_and_not_the_teacher():
    alg, obs = _setup()
    alg.train_mode()
    student = {n: p.clone() for n, p in alg.student.named_parameters()}
    teacher = {n: p.clone() for n, p in alg.teacher.named_parameters()}
    _fill(alg, obs)
    alg.update()
    assert any(not torch.equal(p, student[n]) for n, p in alg.student.named_parameters())
    assert all(torch.equal(p, teacher[n]) for n, p in alg.teacher.named_parameters())


def test_an_unloaded_teacher_is_refused_before_the_first_rollout():
    alg, obs = _setup()
    alg.train_mode()
    with pytest.raises(ValueError, match=re.escape("Teacher model parameters not loaded")):
        alg.act(obs)
    assert alg.storage.step == 0
    alg.teacher_loaded = True
    alg.act(obs)
