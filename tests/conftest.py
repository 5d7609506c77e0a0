"""Shared fixtures: a teacher checkpoint for the toy env."""

from __future__ import annotations

import pytest
from helpers import make_env, teacher_checkpoint


@pytest.fixture
def teacher_path(tmp_path):
    """A PPO-style checkpoint (the installed rsl-rl's layout) for the teacher of ``make_train_cfg``."""
    return teacher_checkpoint(tmp_path / "teacher.pt", make_env())
