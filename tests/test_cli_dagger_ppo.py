"""``dagmix distill --algorithm dagger_ppo`` end to end on the quadcopter with tiny sizes (CPU)."""

from __future__ import annotations

import glob
import json
import os

import pytest
import torch

from dagmix import cli
from dagmix.algorithms import compat

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")
TINY = ["--num_envs", "32", "--seed", "3"]
SHORT = "env.episode_length_s=1.0"


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("logs"))
    argv = ["train-teacher", *TINY, "--max_iterations", "2", "--eval_episodes", "8", "--log_root", root, SHORT]
    assert cli.main(argv) == 0
    (ckpt,) = glob.glob(os.path.join(root, "rsl_rl", "quadcopter_teacher", "*", "model_1.pt"))
    return ckpt


def _run(tmp_path, *extra):
    argv = ["distill", "--algorithm", "dagger_ppo", *TINY, "--max_iterations", "3", "--log_root", str(tmp_path)]
    argv += ["--eval_interval", "1", "--eval_episodes", "8", "--final_eval_episodes", "8", SHORT, *extra]
    return cli.main(argv)


def test_dagger_ppo_trains_evaluates_saves_best_and_the_checkpoint_evals_and_exports(tmp_path, teacher_ckpt, capsys):
    extra = ["--checkpoint", teacher_ckpt, "algorithm.imitation_coef=0.5", "--phase1_iterations", "1"]
    assert _run(tmp_path, *extra) == 0
    out = capsys.readouterr().out
    assert "[dagmix] MixingDAggerPPO: mixing StepSchedule(phase1_iterations=1)" in out
    assert "imitation_coef 0.5" in out and "Imitation coef: 0.5, PPO coef: 1" in out  # the recipe: ppo_coef 1
    assert "Training Phase: Phase 1 (teacher actions)" in out and "SWITCHING TO PHASE 2" in out
    assert "Eval/student_return" in out and "Mean imitation loss" in out and "Distillation/ppo_coef" in out
    assert "student / teacher return:" in out and "best@" in out
    (run,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_dagger_ppo" / "*"))
    assert os.path.isfile(os.path.join(run, "model_best.pt")) and os.path.isfile(os.path.join(run, "model_2.pt"))
    agent = json.load(open(os.path.join(run, "params", "agent.json")))
    assert agent["algorithm"]["class_name"] == "dagmix.algorithms:MixingDAggerPPO"
    assert agent["algorithm"]["imitation_coef"] == 0.5

    capsys.readouterr()
    table = str(tmp_path / "eval.json")
    argv = ["eval", "--checkpoint", os.path.join(run, "model_2.pt"), "--num_episodes", "8", "--json", table, SHORT]
    assert cli.main(argv) == 0
    assert "MixingDAggerPPO checkpoint" in capsys.readouterr().out
    assert set(json.load(open(table))) == {"student", "teacher"}
    assert cli.main(["export", "--checkpoint", os.path.join(run, "model_2.pt"), "--out", str(tmp_path / "x")]) == 0
    assert os.path.isfile(tmp_path / "x" / "policy.onnx") and os.path.isfile(tmp_path / "x" / "policy.pt")
    with pytest.raises(SystemExit, match=r"model_2\.pt is a MixingDAggerPPO checkpoint, not a teacher.*--resume"):
        _run(tmp_path, "--checkpoint", os.path.join(run, "model_2.pt"))  # a run of its own, not a teacher

    capsys.readouterr()  # resume: the checkpoint holds the teacher, the schedules and the masks
    argv = ["distill", "--algorithm", "dagger_ppo", *TINY, "--resume", "--max_iterations", "2", "--log_root"]
    argv += [str(tmp_path), "--eval_interval", "0", "--final_eval_episodes", "0", "--phase1_iterations", "1", SHORT]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "loading run checkpoint" in out and "model_2.pt" in out and "Phase 1" not in out


def test_init_student_from_a_distillation_run(tmp_path, teacher_ckpt, capsys):
    argv = ["distill", *TINY, "--checkpoint", teacher_ckpt, "--max_iterations", "1", "--log_root", str(tmp_path)]
    argv += ["--eval_interval", "0", "--final_eval_episodes", "0", SHORT]
    assert cli.main(argv) == 0
    (distilled,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*" / "model_0.pt"))
    assert _run(tmp_path, "--checkpoint", teacher_ckpt, "--init_student", distilled, "--eval_interval", "0") == 0
    (run,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_dagger_ppo" / "*"))
    assert json.load(open(os.path.join(run, "params", "agent.json")))["algorithm"]["init_student"] == distilled
    with pytest.raises(SystemExit, match="--algorithm dagger_ppo"):
        cli.main(["distill", "--init_student", distilled, "--max_iterations", "1"])
    with pytest.raises(SystemExit, match="no 'student_state_dict'"):
        _run(tmp_path, "--checkpoint", teacher_ckpt, "--init_student", teacher_ckpt)


def test_help_names_the_algorithm_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["distill", "--help"])
    out = capsys.readouterr().out
    assert "--algorithm {distillation,dagger_ppo}" in out and "--init_student" in out


def test_default_config_builds(tmp_path):
    from dagmix.envs.task_configs import dagger_ppo_train_cfg, shipped_teacher

    cfg = dagger_ppo_train_cfg("quadcopter")
    assert cfg["algorithm"]["class_name"] == "dagmix.algorithms:MixingDAggerPPO" and "teacher" in cfg
    assert torch.load(shipped_teacher("quadcopter"), weights_only=False)["actor_state_dict"]


@pytest.mark.parametrize(
    ("algorithm", "flag", "out_of_step"),
    [("dagger_ppo", None, True), ("dagger_ppo", "--no-init_at_random_ep_len", False), ("distillation", None, False)],
)
def test_training_episodes_start_out_of_step_for_dagger_ppo(
    tmp_path, teacher_ckpt, monkeypatch, capsys, algorithm, flag, out_of_step
):
    from rsl_rl.runners import OnPolicyRunner

    from dagmix.algorithms import MixingDistillationRunner

    seen = []
    for cls in (OnPolicyRunner, MixingDistillationRunner):
        learn = cls.learn

        def spy(self, n, init_at_random_ep_len=False, _learn=learn):
            before = self.env.episode_length_buf.clone()
            _learn(self, n, init_at_random_ep_len)
            seen.append((init_at_random_ep_len, before, self.env.episode_length_buf.clone()))

        monkeypatch.setattr(cls, "learn", spy)
    argv = ["distill", "--algorithm", algorithm, *TINY, "--max_iterations", "1", "--log_root", str(tmp_path)]
    argv += ["--checkpoint", teacher_ckpt, "--eval_interval", "0", "--final_eval_episodes", "0", SHORT]
    assert cli.main(argv + ([flag] if flag else [])) == 0
    flag_seen, before, after = seen[-1]  # the outermost call (DistillationRunner's learn may call OnPolicyRunner's)
    assert flag_seen is out_of_step and not before.any()  # every env at step 0 until learn() spreads them
    if out_of_step:  # 32 envs started anywhere in their 50-step episodes, 24 steps ago
        assert after.unique().numel() > 8
    line = "[dagmix] the training envs start at random points of their first episode (init_at_random_ep_len)"
    assert (line in capsys.readouterr().out) is out_of_step
