"""Shared fixtures: a teacher checkpoint for the toy env."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import make_env, make_train_cfg


@pytest.fixture
def teacher_path(tmp_path):
    """A PPO-style checkpoint (``actor_state_dict``) for the teacher of ``make_train_cfg``."""
    from rsl_rl.models import MLPModel

    torch.manual_seed(123)
    env = make_env()
    cfg = make_train_cfg()
    tcfg = copy.deepcopy(cfg["teacher"])
    tcfg.pop("class_name")
    model = MLPModel(env.get_observations(), {"teacher": ["teacher"]}, "teacher", env.num_actions, **tcfg)
    path = tmp_path / "teacher.pt"
    torch.save({"actor_state_dict": model.state_dict(), "iter": 0, "infos": None}, path)
    return str(path)
