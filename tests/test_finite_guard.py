"""Non-finite teacher labels and executed actions stop the run before the update; nothing non-finite is saved."""

from __future__ import annotations

import glob
import os

import pytest
import torch
from helpers import make_runner

from dagmix.algorithms import compat
from dagmix.algorithms.finite_guard import NonFiniteError
from dagmix.integrations.callable_teacher import use_callable_teacher

RUNNERS = ["mixing", "stock"] if compat.RESOLVES_CLASS_PATHS else ["mixing"]


def inf_in_env_3(obs: torch.Tensor) -> torch.Tensor:
    """A teacher that is fine except for +Inf in env 3."""
    actions = torch.tanh(obs[:, :2]).clone()
    actions[3, 0] = float("inf")
    return actions


def nan_in_env_5(obs: torch.Tensor) -> torch.Tensor:
    actions = torch.tanh(obs[:, :2]).clone()
    actions[5] = float("nan")
    return actions


def huge_labels(obs: torch.Tensor) -> torch.Tensor:
    return torch.full((obs.shape[0], 2), 1e30)


def _student_params(r) -> list[torch.Tensor]:
    student = r.alg.policy if compat.STUDENT_TEACHER_POLICY else r.alg.student
    return [p.detach().clone() for p in student.parameters()]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    ("fn", "schedule", "clip", "env"),
    [
        (inf_in_env_3, "teacher_only", None, 3),  # the teacher drives: executed actions are Inf too
        (inf_in_env_3, "teacher_only", 1.0, 3),  # teacher_action_clip must not turn +Inf into a valid label
        (nan_in_env_5, "student_only", None, 5),  # the student drives: only the labels are bad
    ],
)
def test_non_finite_teacher_stops_before_the_update(tmp_path, runner, fn, schedule, clip, env):
    algo = {"mixing": {"schedule": schedule}, "teacher_action_clip": clip}
    r = make_runner(tmp_path, None, algo, runner=runner, log=True, save_interval=1)
    use_callable_teacher(r, fn)
    before = _student_params(r)
    with pytest.raises(NonFiniteError, match=rf"{fn.__name__} produced [1-9]\d* non-finite.*\(e\.g\. env {env}\)"):
        r.learn(3)
    assert all(torch.equal(a, b) for a, b in zip(before, _student_params(r), strict=True))  # no gradient step
    assert glob.glob(os.path.join(tmp_path, "logs", "model_*.pt")) == []  # nothing saved


def test_labels_are_stored_raw_and_checked_once_per_update(tmp_path):
    """Nothing is counted per env step: the update checks the stored (raw) labels with one reduction."""
    r = make_runner(tmp_path, None, {"mixing": {"schedule": "student_only"}, "teacher_action_clip": 1.0})
    use_callable_teacher(r, nan_in_env_5)
    from helpers import rollout

    r.alg.train_mode()
    rollout(r.alg, r.env, 8)
    labels = r.alg.storage.privileged_actions[:8]
    assert (~torch.isfinite(labels)).sum((0, 2)).tolist() == [0] * 5 + [16] + [0] * 10  # 8 steps x 2, env 5 only
    with pytest.raises(NonFiniteError, match=r"produced 16 non-finite.*and 0 executed.*\(e\.g\. env 5\)"):
        r.alg.update()


def test_the_clip_applies_to_the_stored_labels_after_the_check(tmp_path):
    r = make_runner(tmp_path, None, {"mixing": {"schedule": "student_only"}, "teacher_action_clip": 0.5})
    use_callable_teacher(r, lambda obs: torch.full((obs.shape[0], 2), 3.0))
    from helpers import rollout

    r.alg.train_mode()
    rollout(r.alg, r.env, 8)
    assert bool((r.alg.storage.privileged_actions[:8] == 3.0).all())  # raw during the rollout
    r.alg.update()
    assert bool((r.alg.storage.privileged_actions[:8] == 0.5).all())  # the loss saw the clipped label


def test_huge_labels_stop_the_run_and_no_non_finite_checkpoint_is_saved(tmp_path):
    r = make_runner(tmp_path, None, {"mixing": {"schedule": "teacher_only"}}, log=True, save_interval=1)
    use_callable_teacher(r, huge_labels)
    with pytest.raises(NonFiniteError, match=r"loss is non-finite.*huge_labels"):
        r.learn(2)
    assert glob.glob(os.path.join(tmp_path, "logs", "model_*.pt")) == []


def test_non_finite_student_weights_are_never_saved(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path)
    with torch.no_grad():
        next(iter((r.alg.policy if compat.STUDENT_TEACHER_POLICY else r.alg.student).parameters()))[0] = float("nan")
    with pytest.raises(NonFiniteError, match="refusing to save"):
        r.save(str(tmp_path / "model_x.pt"))
    assert not (tmp_path / "model_x.pt").exists()


def test_inf_observations_of_one_env_stop_the_run(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "student_only"}})
    env_get = r.env.get_observations

    def get_observations():
        obs = env_get()
        obs["teacher"][2, 0] = float("inf")  # rsl_rl's check_for_nan does not see Inf
        return obs

    r.env.get_observations = get_observations
    with pytest.raises(NonFiniteError, match=r"non-finite.*\(e\.g\. env 2\)"):
        r.learn(2)


@pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")
def test_dagger_ppo_stops_on_a_nan_teacher_before_any_gradient_step(tmp_path):
    """The student drives, so the env never sees the NaN: only the labels carry it (it used to train on them)."""
    from test_dagger_ppo import runner, save_teacher

    r = runner(tmp_path, save_teacher(tmp_path / "t.pt"), {"mixing": {"schedule": "student_only"}}, log=True)
    with torch.no_grad():
        r.alg.teacher.mlp[-1].bias.fill_(float("nan"))
    before = [p.detach().clone() for p in r.alg.actor.parameters()]
    with pytest.raises(NonFiniteError, match=r"The teacher MLPModel produced \d+ non-finite"):
        r.learn(2)
    assert all(torch.equal(a, b) for a, b in zip(before, r.alg.actor.parameters(), strict=True))
    assert not glob.glob(os.path.join(str(tmp_path / "logs"), "model_*.pt"))  # nothing saved


@pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")
def test_dagger_ppo_stops_on_an_infinite_teacher_the_label_clip_would_hide(tmp_path):
    from test_dagger_ppo import runner, save_teacher

    r = runner(tmp_path, save_teacher(tmp_path / "t.pt"), {"teacher_action_clip": 1.0})
    with torch.no_grad():
        r.alg.teacher.mlp[-1].bias.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="non-finite"):
        r.learn(1)
