"""MixingDAggerPPO driven without a runner, as rsl_rl's algorithm tests drive PPO (and PR #195's DaggerPPO).

An algorithm built directly from models and a storage; ``train_mode()``, ``act()``, ``process_env_step()`` and
``update()`` called by hand. What those tests rely on must either work or fail with a clear error, never silently
train with other coefficients than the ones given.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from dagmix.algorithms import MixingDAggerPPO, compat

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")
NUM_ENVS, NUM_STEPS, OBS_DIM, NUM_ACTIONS = 4, 6, 8, 3


def _setup(**algorithm):
    from rsl_rl.models import MLPModel
    from rsl_rl.storage import RolloutStorage

    torch.manual_seed(0)
    obs = TensorDict({"policy": torch.randn(NUM_ENVS, OBS_DIM)}, batch_size=[NUM_ENVS])
    groups = {"actor": ["policy"], "critic": ["policy"], "teacher": ["policy"]}
    gaussian = {"class_name": "GaussianDistribution", "init_std": 0.5}
    actor = MLPModel(obs, groups, "actor", NUM_ACTIONS, hidden_dims=[16], distribution_cfg=gaussian)
    critic = MLPModel(obs, groups, "critic", 1, hidden_dims=[16])
    teacher = MLPModel(obs, groups, "teacher", NUM_ACTIONS, hidden_dims=[16])
    storage = RolloutStorage("rl", NUM_ENVS, NUM_STEPS, obs, [NUM_ACTIONS])
    settings = {"num_learning_epochs": 1, "num_mini_batches": 1, "phase_console_output": False}
    alg = MixingDAggerPPO(actor, critic, storage, teacher=teacher, **{**settings, **algorithm})
    return alg, obs


def _step_through_the_algorithm(alg: MixingDAggerPPO, obs: TensorDict) -> None:
    for _ in range(NUM_STEPS):
        alg.act(obs)
        alg.process_env_step(obs, torch.randn(NUM_ENVS), torch.zeros(NUM_ENVS), {})
    alg.compute_returns(obs)


def _fill_by_hand(alg: MixingDAggerPPO, obs: TensorDict) -> None:
    from rsl_rl.storage import RolloutStorage

    for _ in range(NUM_STEPS):
        t = RolloutStorage.Transition()
        t.observations = obs
        t.actions = alg.actor(obs, stochastic_output=True).detach()
        t.actions_log_prob = alg.actor.get_output_log_prob(t.actions).detach()
        t.distribution_params = tuple(p.detach() for p in alg.actor.output_distribution_params)
        t.values = alg.critic(obs).detach()
        t.rewards, t.dones = torch.randn(NUM_ENVS), torch.zeros(NUM_ENVS)
        alg.storage.add_transition(t)
    alg.compute_returns(obs)


def test_train_mode_without_a_loaded_teacher_is_a_clear_error():
    alg, _ = _setup()
    with pytest.raises(ValueError, match=r"Teacher model parameters not loaded\. Load a teacher checkpoint"):
        alg.train_mode()
    alg.teacher_loaded = True
    alg.train_mode()


def test_update_of_a_storage_filled_by_hand_is_refused_not_trained_with_other_coefficients():
    alg, obs = _setup(imitation_coef=2.0, ppo_coef=0.0)
    alg.teacher_loaded = True
    alg.train_mode()
    _fill_by_hand(alg, obs)
    before = {n: p.clone() for n, p in alg.actor.named_parameters()}
    with pytest.raises(RuntimeError, match=r"6 of the 6 stored transitions were not recorded through act\(\)"):
        alg.update()
    assert all(torch.equal(p, before[n]) for n, p in alg.actor.named_parameters())  # no gradient step


def test_update_after_act_uses_the_constructors_coefficients():
    alg, obs = _setup(imitation_coef=2.0, ppo_coef=0.0, imitation_balance="fixed", entropy_coef=0.0)
    alg.teacher_loaded = True
    alg.train_mode()
    with torch.inference_mode():
        _step_through_the_algorithm(alg, obs)
    labels = alg.storage.observations["dagmix_teacher_action"]
    assert torch.equal(labels[0], alg.teacher(obs))  # the teacher's labels, not zeros
    losses = []
    for _ in range(3):  # ppo_coef 0: the actor follows the imitation term alone, which must fall
        losses.append(alg.update()["imitation"])
        with torch.inference_mode():
            _step_through_the_algorithm(alg, obs)
    assert alg.last_metrics["Distillation/imitation_coef"] == 2.0 and alg.last_metrics["Distillation/ppo_coef"] == 0.0
    assert losses[-1] < losses[0]


def test_loading_a_distillation_checkpoint_names_the_key_it_lacks():
    alg, _ = _setup()
    loaded = {"student_state_dict": {}, "teacher_state_dict": alg.teacher.state_dict(), "iter": 3}
    with pytest.raises(ValueError, match=r"this one has no 'actor_state_dict' \(keys: .*'teacher_state_dict'") as e:
        alg.load(loaded, None, True)
    assert "neither" not in str(e.value) and "init_student" in str(e.value)
