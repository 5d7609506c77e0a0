"""Shared fixtures: a teacher checkpoint for the toy env, and the Isaac Lab config module (or a skip)."""

from __future__ import annotations

import os

import pytest
from helpers import make_env, teacher_checkpoint


@pytest.fixture
def teacher_path(tmp_path):
    """A PPO-style checkpoint (the installed rsl-rl's layout) for the teacher of ``make_train_cfg``."""
    return teacher_checkpoint(tmp_path / "teacher.pt", make_env())


@pytest.fixture
def isaaclab():
    """Skip (with the reason) where Isaac Lab is not installed; ``scripts/test_isaaclab.sh`` runs these."""
    if os.environ.get("DAGMIX_REQUIRE_ISAACLAB") == "1":  # the Isaac Lab venv: a failed import must fail
        import isaaclab_rl  # noqa: F401
    else:
        pytest.importorskip("isaaclab_rl", reason="needs Isaac Lab 3.0 (scripts/test_isaaclab.sh runs these)")
    from dagmix.integrations import isaaclab_cfg

    return isaaclab_cfg
