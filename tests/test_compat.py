"""The rsl-rl compatibility layer: version check, class resolution, model configs for the installed version."""

from __future__ import annotations

import copy

import pytest
from helpers import make_env, make_train_cfg, teacher_checkpoint

from dagmix.algorithms import MixingDistillation, MixingDistillationRunner, compat


def test_installed_version_is_supported_and_others_are_refused(monkeypatch):
    compat.check_rsl_rl_version()
    for bad in ((2, 3, 3), (3, 0, 0), (5, 3, 0), (5, 6, 0)):
        monkeypatch.setattr(compat, "_V", bad)
        with pytest.raises(ImportError, match=r"supports rsl-rl-lib >=3.0.1,<3.4 or ==4.0.\* or >=5.4.2,<5.6"):
            compat.check_rsl_rl_version()
    for good in ((3, 0, 1), (3, 3, 0), (4, 0, 1), (5, 4, 2), (5, 5, 1)):
        monkeypatch.setattr(compat, "_V", good)
        compat.check_rsl_rl_version()


def test_resolve_class_accepts_paths_classes_and_rsl_rl_names():
    import rsl_rl.algorithms

    assert compat.resolve_class("dagmix.algorithms:MixingDistillation", None) is MixingDistillation
    assert compat.resolve_class("dagmix.algorithms.MixingDistillation", None) is MixingDistillation
    assert compat.resolve_class(MixingDistillation, None) is MixingDistillation
    assert compat.resolve_class("Distillation", rsl_rl.algorithms) is rsl_rl.algorithms.Distillation
    with pytest.raises(ValueError, match=r"'Distilation' is not in rsl_rl.algorithms; use 'pkg.module:ClassName'"):
        compat.resolve_class("Distilation", rsl_rl.algorithms)


@pytest.mark.parametrize("rnn_type", [None, "gru"])
def test_model_cfg_of_the_installed_version_trains(tmp_path, rnn_type, capsys):
    cfg = {k: v for k, v in make_train_cfg().items() if k not in ("obs_groups", "student", "teacher", "policy")}
    cfg["algorithm"]["mixing"] = {"schedule": "two_stage", "phase1_iterations": 1}
    cfg.update(compat.distillation_model_cfg([32, 32], rnn_type=rnn_type, rnn_hidden_dim=16))
    before = copy.deepcopy(cfg)
    env = make_env()
    r = MixingDistillationRunner(env, cfg, str(tmp_path / "logs"), "cpu")
    r.load(teacher_checkpoint(tmp_path / "teacher.pt", env))
    r.learn(2)
    assert isinstance(r.alg, MixingDistillation) and r.alg.last_metrics["Distillation/beta"] == 0.0
    assert (
        "  SWITCHING TO PHASE 2: Now using STUDENT actions to update environment\n  Iteration: 1\n"
        in capsys.readouterr().out
    )
    if compat.STUDENT_TEACHER_POLICY:  # rsl-rl 3.x pops and writes keys; MixingDistillationRunner gives it a copy
        assert cfg == before


def test_mark_teacher_loaded_satisfies_the_runners_check(tmp_path):
    r = MixingDistillationRunner(make_env(), make_train_cfg(), str(tmp_path / "logs"), "cpu")
    assert not r.alg.teacher_loaded
    compat.mark_teacher_loaded(r.alg)
    assert r.alg.teacher_loaded
    r.learn(1)


def test_callable_teacher_replaces_a_network_teacher_on_every_version(tmp_path):
    import torch

    from dagmix.integrations.callable_teacher import use_callable_teacher

    def expert(obs):  # the toy env's teacher group: goal offset (2) and velocity (2)
        return (2.0 * obs[:, :2] - obs[:, 2:]).clamp(-1.0, 1.0)

    cfg = make_train_cfg({"mixing": {"schedule": "teacher_only"}})
    r = MixingDistillationRunner(make_env(), cfg, str(tmp_path / "logs"), "cpu")
    use_callable_teacher(r, expert)
    r.learn(1)
    alg = r.alg
    assert torch.equal(alg.executed_actions, alg.storage.privileged_actions)
    first = alg.storage.observations["teacher"][0]
    assert torch.equal(alg.storage.privileged_actions[0], expert(first))
