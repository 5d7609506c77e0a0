"""Logged scalars stay exact when the env swaps its ``extras["log"]`` dict only now and then (as Isaac Lab does)."""

from __future__ import annotations

import glob

import pytest
from helpers import make_runner


class _SwapLogDictEveryK:
    """Wraps an env so ``extras["log"]`` is one dict reused across steps and iterations, replaced every ``k`` steps.

    Isaac Lab's ``ManagerBasedRLEnv`` replaces ``extras["log"]`` only when some env resets, so rsl_rl's logger sees
    a dict written in an earlier iteration next to a fresh one within the same iteration.
    """

    def __init__(self, env, k: int) -> None:
        self.env, self.k, self.steps, self.log = env, k, 0, {}

    def __getattr__(self, name):
        return getattr(self.env, name)

    def step(self, actions):
        obs, rew, dones, extras = self.env.step(actions)
        self.steps += 1
        if self.steps % self.k == 0:
            self.log = {}
        extras["log"] = self.log
        return obs, rew, dones, extras


@pytest.mark.parametrize("runner", ["mixing", "stock"])
def test_scalars_are_exact_with_an_env_that_reuses_its_log_dict(tmp_path, teacher_path, runner):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    algo = {"mixing": {"schedule": "step", "phase1_iterations": 2}}
    r = make_runner(tmp_path, teacher_path, algo, runner=runner, log=True, steps=8)
    r.env = _SwapLogDictEveryK(r.env, k=5)  # dicts straddle iterations: steps 5-9 span iterations 0 and 1
    r.learn(5)
    r.logger.writer.flush()
    acc = EventAccumulator(glob.glob(str(tmp_path / "logs"))[0])
    acc.Reload()

    def series(tag):
        return {e.step: e.value for e in acc.Scalars(tag)}

    assert series("Distillation/beta") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0, 4: 0.0}
    assert series("Distillation/training_phase") == {0: 1.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: 2.0}
    assert series("Distillation/current_iteration") == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0}
    assert series("Distillation/teacher_fraction") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0, 4: 0.0}
    assert set(series("Distillation/behavior_loss_teacher_driven")) == {0, 1}
    assert set(series("Distillation/behavior_loss_student_driven")) == {2, 3, 4}
