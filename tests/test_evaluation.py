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
