"""evaluate_policy: the behaviour loss on the states the evaluated policy visits, and the JSON form."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dagmix.envs import make
from dagmix.envs.evaluation import evaluate_policy
from dagmix.envs.task_configs import TEACHER_MODEL, shipped_teacher


def _teacher(env):
    from rsl_rl.models import MLPModel

    cfg = {k: v for k, v in copy.deepcopy(TEACHER_MODEL).items() if k != "class_name"}  # 5.4.2 pops nested keys
    model = MLPModel(env.get_observations(), {"teacher": ["teacher"]}, "teacher", env.num_actions, **cfg)
    model.load_state_dict(torch.load(shipped_teacher("quadcopter"), weights_only=False)["actor_state_dict"])
    return model


class _Offset(torch.nn.Module):
    """The teacher's action plus a constant: its MSE to the (unclipped) teacher is offset**2 exactly."""

    def __init__(self, teacher, offset):
        super().__init__()
        self.teacher, self.offset = teacher, offset

    def forward(self, obs):
        return self.teacher(obs) + self.offset

    def reset(self, dones=None):
        pass


def test_behavior_loss_is_zero_for_the_teacher_and_offset_squared_for_a_shifted_policy():
    env = make("quadcopter", num_envs=16, seed=3, episode_length_s=1.0)
    teacher = _teacher(env)
    assert evaluate_policy(env, teacher, 16, teacher=teacher).behavior_loss == 0.0
    shifted = evaluate_policy(env, _Offset(teacher, 0.5), 16, teacher=teacher)
    assert shifted.behavior_loss == pytest.approx(0.25, rel=1e-5)


def test_behavior_loss_uses_the_clipped_teacher_label():
    env = make("quadcopter", num_envs=8, seed=4, episode_length_s=1.0)
    teacher = _teacher(env)
    # a policy that outputs a constant 5: against labels clipped to [-1e-6, 1e-6] the MSE is ~25
    const = _Offset(lambda obs: torch.zeros(obs.batch_size[0], env.num_actions), 5.0)
    res = evaluate_policy(env, const, 8, teacher=teacher, teacher_action_clip=1e-6)
    assert res.behavior_loss == pytest.approx(25.0, rel=1e-4)


def test_behavior_loss_is_left_out_of_the_json_when_not_measured():
    env = make("quadcopter", num_envs=8, seed=5, episode_length_s=1.0)
    teacher = _teacher(env)
    plain = evaluate_policy(env, teacher, 8)
    assert plain.behavior_loss is None and "behavior_loss" not in plain.to_dict()
    measured = evaluate_policy(env, teacher, 8, teacher=teacher).to_dict()
    assert measured["behavior_loss"] == 0.0 and math.isfinite(measured["return_mean"])


class _Recorder(torch.nn.Module):
    """Wraps a policy and records the observations of every step (to compare what two runs saw)."""

    def __init__(self, policy):
        super().__init__()
        self.policy, self.seen = policy, []

    def forward(self, obs):
        self.seen.append(obs.clone())
        return self.policy(obs)

    def reset(self, dones=None):
        pass


@pytest.mark.parametrize("task", ["quadcopter", "cue_doors"])
def test_same_episodes_give_every_policy_the_same_starts_and_noise(task):
    from dagmix.envs.evaluation import SameEpisodes

    env = make(task, num_envs=16, seed=7, **({"episode_length_s": 1.0} if task == "quadcopter" else {}))
    a = env.num_actions
    good = _Recorder(lambda obs: torch.zeros(obs.batch_size[0], a))
    bad = _Recorder(lambda obs: torch.ones(obs.batch_size[0], a))  # another trajectory: other episode ends
    episodes = SameEpisodes(env, 16)
    first, second = episodes(good), episodes(bad)
    # the first observation (starts, and the student's noise) is identical for both policies ...
    assert torch.equal(good.seen[0]["policy"], bad.seen[0]["policy"])
    assert torch.equal(good.seen[0]["teacher"], bad.seen[0]["teacher"])
    if task == "quadcopter":  # its student's observations have new noise every step
        assert not torch.equal(good.seen[1]["policy"], good.seen[2]["policy"])
    again = _Recorder(good.policy)
    assert episodes(again) == first  # the same episodes on every call: a deterministic policy gives the same result
    assert all(torch.equal(x["policy"], y["policy"]) for x, y in zip(good.seen, again.seen, strict=True))
    assert second != first
    # without SameEpisodes the generator moves on: the next evaluation sees other starts
    plain = _Recorder(good.policy)
    evaluate_policy(env, plain, 16)
    assert not torch.equal(plain.seen[0]["teacher"], good.seen[0]["teacher"])


def test_same_episodes_needs_a_seeded_generator():
    from dagmix.envs.evaluation import SameEpisodes

    class NoGen:
        num_envs = 4

    with pytest.raises(ValueError, match="NoGen has no seeded generator `gen` and no reseed"):
        SameEpisodes(NoGen(), 4)


def test_the_best_rule_never_prefers_a_lower_success_rate_for_a_higher_return():
    from dagmix.envs.evaluation import EvalResult, best_key

    def res(ret, success):
        return EvalResult(ret, 1.0, success, 0.01, 0.1, 0.01, 256)

    assert best_key(res(100.0, 1.0)) > best_key(res(120.0, 0.996))  # success first
    assert best_key(res(120.0, 1.0)) > best_key(res(100.0, 1.0))  # then the return
    nan = float("nan")
    assert best_key(res(120.0, nan)) > best_key(res(100.0, nan))  # no success rate: the return alone
