"""The teacher-guided recipe's pieces: ADVISOR per-state weights, the critic warm-up, the hand-off's std."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict

from dagmix.algorithms import compat
from dagmix.algorithms.guidance import (
    AdvisorHead,
    CriticWarmup,
    explained_variance,
    explained_variance_sums,
    set_action_std,
)
from dagmix.mixing.dagger_ppo_schema import validate_dagger_ppo

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="the recipe needs rsl-rl-lib 5.x models")


def _actor(kind: str = "mlp"):
    from rsl_rl.models import MLPModel, RNNModel

    obs = TensorDict({"policy": torch.zeros(4, 3)}, batch_size=[4])
    common = {"hidden_dims": [32, 32], "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 0.5}}
    if kind == "gru":
        return RNNModel(obs, {"actor": ["policy"]}, "actor", 1, rnn_type="gru", rnn_hidden_dim=16, **common)
    return MLPModel(obs, {"actor": ["policy"]}, "actor", 1, **common)


def _rollout(steps: int, envs: int, gen: torch.Generator):
    """Half the envs (flag +1) have labels their observations determine, the rest (flag -1) a coin they cannot see."""
    obs = torch.rand(steps, envs, 3, generator=gen) * 2 - 1
    first_half = torch.arange(envs).view(1, -1, 1) < envs // 2
    obs[..., 2:] = torch.where(first_half, 1.0, -1.0)
    imitable = torch.tanh(obs[..., :2].sum(-1, keepdim=True))
    coin = torch.randint(0, 2, (steps, envs, 1), generator=gen).float() * 2 - 1
    labels = torch.where(first_half, imitable, coin)
    observations = TensorDict({"policy": obs}, batch_size=[steps, envs])
    return observations, labels, torch.zeros(steps, envs, 1)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_advisor_weights_imitation_where_the_label_is_observable_and_ppo_where_it_is_not(kind):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    head = AdvisorHead(_actor(kind), alpha=10.0, learning_rate=3e-3, gradient_length=4)
    for _ in range(150):
        weights, distance = head.fit(*_rollout(8, 64, gen))
    assert weights.shape == (8, 64, 1) and weights.dtype == torch.float32
    assert ((weights >= 0) & (weights <= 1)).all()
    observable, hidden = weights[:, :32].mean().item(), weights[:, 32:].mean().item()
    assert observable > 0.8, observable  # the head copies the teacher there: imitation
    assert hidden < 0.01, hidden  # a coin it cannot see: d ~ 1, w ~ exp(-10): PPO
    assert 0.4 < distance.item() < 0.6  # the mean of ~0 (observable half) and ~1 (hidden half)


def test_advisor_head_copies_the_actor_and_shares_its_normaliser():
    actor = _actor()
    head = AdvisorHead(actor, alpha=1.0, learning_rate=1e-3, gradient_length=1)
    assert head.model is not actor and head.model.obs_normalizer is actor.obs_normalizer
    for (name, a), b in zip(actor.named_parameters(), head.model.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name
    gen = torch.Generator().manual_seed(0)
    before = [p.clone() for p in actor.parameters()]
    head.fit(*_rollout(4, 8, gen))
    # the actor is not trained by it
    assert all(torch.equal(a, b) for a, b in zip(before, actor.parameters(), strict=True))


def test_advisor_state_round_trips():
    gen = torch.Generator().manual_seed(0)
    head = AdvisorHead(_actor(), alpha=10.0, learning_rate=1e-3, gradient_length=2)
    head.fit(*_rollout(4, 8, gen))
    other = AdvisorHead(_actor(), alpha=10.0, learning_rate=1e-3, gradient_length=2)
    other.load_state_dict(copy.deepcopy(head.state_dict()))  # as a checkpoint holds it: no shared tensors
    data = _rollout(4, 8, torch.Generator().manual_seed(5))
    assert torch.equal(head.fit(*data)[0], other.fit(*data)[0])


def test_explained_variance_of_perfect_constant_and_useless_critics():
    returns = torch.linspace(-1, 1, 50).view(10, 5, 1)
    assert explained_variance(explained_variance_sums(returns, returns).tolist()) == pytest.approx(1.0)
    assert explained_variance(explained_variance_sums(torch.zeros_like(returns), returns).tolist()) == pytest.approx(
        0.0, abs=1e-6
    )
    constant = torch.ones(10, 5, 1)
    assert explained_variance(explained_variance_sums(constant, constant).tolist()) == 0.0


def test_critic_warmup_holds_ppo_until_the_threshold_then_ramps():
    warm = CriticWarmup(threshold=0.5, max_iterations=100, ramp_iterations=4)
    factors = [warm.factor(it, ev) for it, ev in enumerate([0.1, 0.3, 0.6, 0.2, 0.9, 0.9, 0.9])]
    assert factors == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]  # once warmed up, a worse rollout does not stop it
    assert warm.done_at == 2
    capped = CriticWarmup(threshold=0.99, max_iterations=3, ramp_iterations=1)
    assert [capped.factor(it, 0.0) for it in range(5)] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert CriticWarmup(None, 0, 1).factor(0, None) == 1.0
    resumed = CriticWarmup(threshold=0.5, max_iterations=100, ramp_iterations=4)
    resumed.load_state_dict(warm.state_dict())
    assert resumed.factor(7, 0.0) == warm.factor(7, 0.0) == 1.0


@pytest.mark.parametrize("std_type", ["scalar", "log"])
def test_set_action_std(std_type):
    from rsl_rl.models import MLPModel

    obs = TensorDict({"policy": torch.zeros(4, 3)}, batch_size=[4])
    dist = {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": std_type}
    actor = MLPModel(obs, {"actor": ["policy"]}, "actor", 2, hidden_dims=[8], distribution_cfg=dist)
    set_action_std(actor, 0.2)
    actor(obs, stochastic_output=True)
    assert torch.allclose(actor.output_std, torch.full((4, 2), 0.2))


def test_set_action_std_refuses_a_deterministic_actor():
    from rsl_rl.models import MLPModel

    obs = TensorDict({"policy": torch.zeros(4, 3)}, batch_size=[4])
    with pytest.raises(ValueError, match="init_student_std=0.2 needs an actor with a state-independent Gaussian"):
        set_action_std(MLPModel(obs, {"actor": ["policy"]}, "actor", 2, hidden_dims=[8]), 0.2)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("imitation_balance", "advisr", r"imitation_balance='advisr' is not one of 'advisor', 'fixed'.*'advisor'"),
        ("imitation_floor", 1.5, r"imitation_floor=1.5 must be a finite number in \[0.0, 1.0\]"),
        ("advisor_alpha", -1, r"advisor_alpha=-1 must be a finite number >= 0.0"),
        ("critic_warmup", "high", r"critic_warmup='high' must be a finite number"),
        ("critic_warmup_max_iterations", 2.5, r"critic_warmup_max_iterations=2.5 must be an integer >= 0"),
        ("ppo_ramp_iterations", 0, r"ppo_ramp_iterations=0 must be an integer >= 1"),
        ("init_student_std", 0.0, r"init_student_std=0.0 must be > 0"),
        ("init_critic_from_teacher", "yes", r"init_critic_from_teacher='yes' must be True, False or None"),
    ],
)
def test_recipe_keys_are_validated_with_the_fix(key, value, match):
    with pytest.raises(ValueError, match=match):
        validate_dagger_ppo({key: value})


def test_recipe_defaults():
    options = validate_dagger_ppo({})
    assert options.imitation_balance == "advisor" and options.imitation_floor == 0.0
    assert options.critic_warmup == 0.5 and options.min_learning_rate is None
