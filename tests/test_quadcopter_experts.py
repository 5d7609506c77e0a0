"""quadcopter_experts, the built-in multi-expert example: the env's per-env starts and expert ids, `dagmix distill`
with its two shipped experts (fresh and resumed), and the benchmark's per-expert evaluation (tiny sizes, CPU)."""

from __future__ import annotations

import glob
import json
import os

import pytest
import torch

from dagmix import cli
from dagmix.algorithms import compat
from dagmix.envs import make
from dagmix.envs.quadcopter import OMEGA, QUAT, VEL

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MultiTeacherModel needs rsl-rl-lib 5.x")

SHORT = "env.episode_length_s=1.0"  # 50-step episodes


# ----------------------------------------------------------------------------------------------- the env
def test_each_env_has_one_start_and_observes_its_expert():
    env = make("quadcopter_experts", 6, seed=1)
    ids = env.get_observations()["expert_id"]
    assert ids.shape == (6, 1) and ids.dtype == torch.float32
    assert ids.view(-1).tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    level, thrown = env.state[:, 0::2], env.state[:, 1::2]
    assert torch.all(level[2] == 0.5) and torch.all(level[VEL] == 0) and torch.all(level[OMEGA] == 0)
    assert torch.all(level[QUAT] == torch.tensor([[1.0], [0.0], [0.0], [0.0]]))
    assert torch.all(thrown[2] == 1.0) and torch.all(thrown[OMEGA].abs().sum(0) > 0)
    # the thrown envs are quadcopter_thrown's (same seed)
    reference = make("quadcopter_thrown", 6, seed=1, velocity_noise=0.05)
    assert torch.equal(thrown, reference.state[:, 1::2]) and torch.equal(env.state[13:18], reference.state[13:18])
    # every draw is a full-size draw of `gen`, whatever the actions and whichever envs end: same-episode
    # evaluations (envs.evaluation.SameEpisodes) replay the episodes by restoring the generator
    other = make("quadcopter_experts", 6, seed=1)
    other.get_observations()  # as `env` above (new noise: a draw)
    actions = torch.rand(60, 6, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ended = torch.zeros(6, dtype=torch.bool)
    for t in range(60):  # episodes end and reset (the thrown ones crash within the first steps)
        obs, _, dones, _ = env.step(torch.zeros(6, 4))
        other.step(actions[t])
        ended |= dones
        assert torch.equal(obs["expert_id"], ids)  # fixed by env index: the selector never changes
    assert ended.any() and torch.equal(env.gen.get_state(), other.gen.get_state())


def test_expert_cycle_gives_one_experts_envs_and_is_checked():
    thrown = make("quadcopter_experts", 4, seed=0, expert_cycle=[1])
    assert thrown.get_observations()["expert_id"].view(-1).tolist() == [1.0] * 4
    assert torch.all(thrown.state[2] == 1.0)
    level = make("quadcopter_experts", 4, seed=0, expert_cycle=[0])
    assert torch.all(level.state[2] == 0.5) and torch.all(level.state[VEL] == 0)
    assert 1 <= level.reset_draw_period < level.min_episode_steps  # the level start is the faster way out
    with pytest.raises(ValueError, match=r"expert_cycle=\(0, 2\) must be a non-empty list of expert indices"):
        make("quadcopter_experts", 4, expert_cycle=[0, 2])
    with pytest.raises(ValueError, match="Unknown quadcopter config key"):
        make("quadcopter", 4, expert_cycle=[0])  # the other quadcopter tasks keep their meaning


# ----------------------------------------------------------------------------------------------- dagmix distill
def _distill(root, *extra):
    argv = ["distill", "--task", "quadcopter_experts", "--num_envs", "16", "--max_iterations", "2", "--seed", "1"]
    return cli.main([*argv, "--log_root", str(root), SHORT, *extra])


def test_distill_with_the_two_shipped_experts_then_resume(tmp_path, capsys):
    from dagmix.algorithms.checkpoint_io import load_checkpoint
    from dagmix.envs.task_configs import shipped_teacher

    assert _distill(tmp_path, "--eval_interval", "1", "--eval_episodes", "8", "--final_eval_episodes", "8") == 0
    out = capsys.readouterr().out
    experts = f"{shipped_teacher('quadcopter')}, {shipped_teacher('quadcopter_thrown')}"
    assert f"[dagmix] experts (teacher section's checkpoints): {experts}\n" in out
    assert "loading teacher checkpoint" not in out
    assert "Distillation/expert_fraction_0: 0.5000" in out and "Distillation/behavior_loss_expert_1" in out
    assert "student / teacher return:" in out and "best@" in out  # the multi-teacher runs on the eval envs too
    (run,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_experts_distillation" / "*"))
    saved = load_checkpoint(os.path.join(run, "model_1.pt"), "cpu")
    assert any(k.startswith("experts.1.") for k in saved["teacher_state_dict"])
    agent = json.load(open(os.path.join(run, "params", "agent.json")))
    assert agent["teacher"]["selector_group"] == "expert_id" and len(agent["teacher"]["checkpoints"]) == 2

    assert _distill(tmp_path, "--resume", "--eval_interval", "0", "--final_eval_episodes", "0") == 0
    out = capsys.readouterr().out
    assert f"loading run checkpoint {os.path.join(run, 'model_1.pt')}" in out
    assert "Phase Iteration: 3/60 (Phase 1)" in out and "Phase Iteration: 2/60" in out
    assert "Phase Iteration: 1/60" not in out  # iterations 1 and 2 (1-based: 2 and 3) continue the run


def test_a_copied_checkpoint_evaluates_without_its_experts_files(tmp_path, capsys, monkeypatch):
    """The teacher's weights are in the file: the experts' checkpoint paths of the run's clone are not read."""
    import shutil

    from dagmix.algorithms.checkpoint_io import load_checkpoint, save_checkpoint

    assert _distill(tmp_path, "--eval_interval", "0", "--final_eval_episodes", "0") == 0
    (run,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_experts_distillation" / "*"))
    saved = load_checkpoint(os.path.join(run, "model_1.pt"), "cpu")
    saved["dagmix"]["model"]["teacher"]["checkpoints"] = ["/moved/level.pt", "/moved/thrown.pt"]  # another clone's
    copied = str(tmp_path / "copied.pt")
    save_checkpoint(saved, copied)
    shutil.rmtree(run)  # no run folder: the checkpoint's own model config is all there is
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", copied, "--task", "quadcopter_experts", "--num_episodes", "4", SHORT]) == 0
    assert "teacher" in capsys.readouterr().out


def test_a_teacher_checkpoint_with_the_multi_expert_task_is_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="dagmix: --checkpoint: the teacher of --task quadcopter_experts is a multi"):
        _distill(tmp_path, "--checkpoint", "teacher.pt")
    assert not glob.glob(str(tmp_path / "rsl_rl" / "*" / "*"))  # refused before a run folder is left behind


# ----------------------------------------------------------------------------------------------- benchmark
def test_compare_schedules_records_each_expert_and_the_report_reads_them(tmp_path, capsys):
    from dagmix.benchmarks import compare_schedules, experts

    argv = ["--task", "quadcopter_experts", "--schedules", "two_stage_third", "--seeds", "1", "--iterations", "2"]
    argv += ["--num-envs", "16", "--steps-per-env", "12", "--eval-interval", "1", "--eval-episodes", "8"]
    argv += ["--final-eval-episodes", "8", "--workers", "1", "--env-overrides", "episode_length_s=1.0"]
    compare_schedules.main([*argv, "--out-dir", str(tmp_path / "both")])
    compare_schedules.main([*argv, "expert_cycle=[1]", "--out-dir", str(tmp_path / "thrown")])
    both = json.loads((tmp_path / "both" / "runs" / "two_stage_third" / "seed0.json").read_text())
    thrown = json.loads((tmp_path / "thrown" / "runs" / "two_stage_third" / "seed0.json").read_text())
    assert [e["name"] for e in both["per_expert"]] == ["level", "thrown"]
    for e in both["per_expert"]:
        assert e["student"]["num_episodes"] == e["expert_alone"]["num_episodes"] == 8
        assert e["student"]["behavior_loss"] >= 0.0 and "behavior_loss" not in e["expert_alone"]
    # a student distilled from the thrown expert alone: its final envs are the thrown expert's envs
    assert thrown["final"] == thrown["per_expert"][1]["student"]
    assert thrown["teacher_final"] == thrown["per_expert"][1]["expert_alone"]
    assert both["per_expert"][1]["expert_alone"] == thrown["per_expert"][1]["expert_alone"]  # same episodes
    assert both["per_expert"][1]["student"] != thrown["per_expert"][1]["student"]  # different students
    capsys.readouterr()
    experts.main(["--runs", f"both experts={tmp_path / 'both'}", f"thrown only={tmp_path / 'thrown'}"])
    out = capsys.readouterr().out
    assert "| both experts | two_stage_third | level (expert 0) |" in out
    assert "| thrown only | two_stage_third | thrown (expert 1) |" in out


def test_the_report_has_help_and_refuses_a_folder_without_per_expert_runs(tmp_path, capsys):
    from dagmix.benchmarks import experts

    with pytest.raises(SystemExit) as exc:
        experts.main(["--help"])
    assert exc.value.code == 0 and "LABEL=DIR" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        experts.main(["--runs", f"empty={tmp_path}"])
    assert "no finished run with per-expert results" in capsys.readouterr().err
