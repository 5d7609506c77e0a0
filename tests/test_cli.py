"""The dagmix command end to end on the quadcopter with tiny sizes (seconds, CPU)."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import torch

from dagmix import cli
from dagmix.algorithms.checkpoint_io import load_checkpoint
from dagmix.cli.models import load_models

TINY = ["--num_envs", "32", "--seed", "3"]
SHORT = "env.episode_length_s=1.0"  # 50-step episodes keep every evaluation short


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("logs"))
    argv = ["train-teacher", *TINY, "--max_iterations", "2", "--eval_episodes", "8", "--log_root", root, SHORT]
    assert cli.main(argv) == 0
    ckpts = glob.glob(os.path.join(root, "rsl_rl", "quadcopter_teacher", "*", "model_1.pt"))
    assert len(ckpts) == 1
    return ckpts[0]


def _distill(tmp_path, teacher, *extra):
    argv = ["distill", *TINY, "--checkpoint", teacher, "--max_iterations", "3", "--log_root", str(tmp_path)]
    argv += ["--eval_interval", "1", "--eval_episodes", "8", "--final_eval_episodes", "8", SHORT, *extra]
    return cli.main(argv)


def test_distill_two_stage_prints_phases_evaluates_and_saves_best(tmp_path, teacher_ckpt, capsys):
    assert _distill(tmp_path, teacher_ckpt, "--schedule", "two_stage", "--phase1_iterations", "2") == 0
    out = capsys.readouterr().out
    assert "Phase Iteration: 2/2 (Phase 1)" in out and "  Iteration: 2\n" in out
    assert "Eval/student_return" in out and "Eval/student_success_rate" in out
    assert "Eval/teacher_return" in out and "Eval/teacher_success_rate" in out and "Eval/return_ratio" in out
    assert "student / teacher return:" in out and "best@" in out
    assert "[dagmix] best: the periodic evaluation with the highest success rate, then highest return" in out
    (run,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*"))
    assert os.path.isfile(os.path.join(run, "model_best.pt")) and os.path.isfile(os.path.join(run, "model_2.pt"))
    figure = os.path.join(run, "eval.png")
    assert f"[dagmix] figure: {figure}\n" in out and os.path.getsize(figure) > 0
    best = load_checkpoint(os.path.join(run, "model_best.pt"), "cpu")
    assert best["infos"]["teacher_eval"]["num_episodes"] == 8 and "return_mean" in best["infos"]["eval"]
    agent = json.load(open(os.path.join(run, "params", "agent.json")))
    assert agent["algorithm"]["mixing"] == {"schedule": "two_stage", "phase1_iterations": 2}


def test_distill_under_the_stock_runner_and_overrides(tmp_path, teacher_ckpt, capsys):
    extra = ["--runner", "stock", "--schedule", "two_stage", "--phase1_iterations", "1"]
    extra += ["algorithm.mixing.granularity=episode", "env.thrust_to_weight=2.0"]
    assert _distill(tmp_path, teacher_ckpt, *extra) == 0
    out = capsys.readouterr().out
    assert "granularity=episode" in out and "  Iteration: 1\n" in out


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("algorithm.learnin_rate=1", "Unknown config key 'algorithm.learnin_rate'"),
        ("env.no_such_field=1", "no_such_field"),
        ("algorithm.mixing.phase_1=3", "Unknown key"),
        ("nokeyvalue", "not of the form key=value"),
    ],
)
def test_distill_bad_override_names_the_key(tmp_path, teacher_ckpt, override, match):
    with pytest.raises(SystemExit, match=match):
        _distill(tmp_path, teacher_ckpt, override)


def test_resume_continues_the_run(tmp_path, teacher_ckpt, capsys):
    assert _distill(tmp_path, teacher_ckpt, "--schedule", "two_stage", "--phase1_iterations", "5") == 0
    capsys.readouterr()
    argv = ["distill", *TINY, "--resume", "--max_iterations", "3", "--log_root", str(tmp_path), "--eval_interval", "0"]
    argv += ["--final_eval_episodes", "0", "--schedule", "two_stage", "--phase1_iterations", "5", SHORT]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "loading run checkpoint" in out and "model_2.pt" in out
    assert "Phase Iteration: 3/5 (Phase 1)" in out and "Phase Iteration: 5/5 (Phase 1)" in out  # iterations 2..4
    assert "Phase Iteration: 1/5" not in out


def test_eval_table_json_and_teacher_only_checkpoint(tmp_path, teacher_ckpt, capsys):
    assert _distill(tmp_path, teacher_ckpt) == 0
    ckpt = sorted(glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*" / "model_2.pt")))[-1]
    out_json = tmp_path / "eval.json"
    assert cli.main(["eval", "--checkpoint", ckpt, "--num_episodes", "8", "--json", str(out_json), SHORT]) == 0
    data = json.loads(out_json.read_text())
    keys = {"return_mean", "return_ci95", "success_rate", "success_ci95", "final_distance", "final_distance_ci95"}
    assert set(data) == {"student", "teacher"} and keys <= set(data["student"]) and keys <= set(data["teacher"])
    assert 0.0 <= data["student"]["success_rate"] <= 1.0
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", teacher_ckpt, "--num_episodes", "8", SHORT]) == 0
    out = capsys.readouterr().out
    assert "PPO checkpoint: evaluating the teacher alone" in out and "student" not in out.split("policy")[-1]


def test_a_student_without_velocity_trains_and_eval_names_the_override_it_needs(tmp_path, teacher_ckpt, capsys):
    assert _distill(tmp_path, teacher_ckpt, "env.velocity_noise=None") == 0
    ckpt = sorted(glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*" / "model_2.pt")))[-1]
    state = torch.load(ckpt, weights_only=False)["student_state_dict"]
    assert state["obs_normalizer._mean"].shape == (1, 13)  # the student read 16 - 3 observations
    hint = r"pass the same: env.episode_length_s=1.0 env.velocity_noise=None\. Details: .*size mismatch"
    with pytest.raises(SystemExit, match=hint):
        cli.main(["eval", "--checkpoint", ckpt, "--num_episodes", "4"])
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", ckpt, "--num_episodes", "4", "env.velocity_noise=None", SHORT]) == 0
    assert "student" in capsys.readouterr().out
    out = str(tmp_path / "exported")
    with pytest.raises(SystemExit, match=r"pass the same: env.episode_length_s=1.0 env.velocity_noise=None\."):
        cli.main(["export", "--checkpoint", ckpt, "--out", out])
    with pytest.raises(SystemExit, match="export takes env.key=value overrides only"):
        cli.main(["export", "--checkpoint", ckpt, "--out", out, "student.rnn_hidden_dim=16"])
    assert cli.main(["export", "--checkpoint", ckpt, "--out", out, "env.velocity_noise=None"]) == 0
    policy = torch.jit.load(os.path.join(out, "policy.pt"))
    assert policy(torch.zeros(1, 13)).shape == (1, 4)
    # a run made before the velocity estimate was the default recorded no velocity_noise: the hint names it
    params = os.path.join(os.path.dirname(ckpt), "params", "env.json")
    with open(params, "w") as f:
        json.dump({"task": "quadcopter", "overrides": {}}, f)
    with pytest.raises(SystemExit, match=r"13-observation student: add env.velocity_noise=None\. Details: .*size"):
        cli.main(["eval", "--checkpoint", ckpt, "--num_episodes", "4"])
    # the default student (16 observations) needs no override
    assert _distill(tmp_path / "default", teacher_ckpt) == 0
    ckpt = sorted(glob.glob(str(tmp_path / "default" / "rsl_rl" / "quadcopter_distillation" / "*" / "model_2.pt")))
    state = torch.load(ckpt[-1], weights_only=False)["student_state_dict"]
    assert state["obs_normalizer._mean"].shape == (1, 16)
    assert cli.main(["export", "--checkpoint", ckpt[-1], "--out", str(tmp_path / "exported16")]) == 0
    assert torch.jit.load(os.path.join(tmp_path, "exported16", "policy.pt"))(torch.zeros(1, 16)).shape == (1, 4)


def _onnxruntime():
    """onnxruntime (the dev extra); the test skips without it, except under CI=true, where it must be installed."""
    if os.environ.get("CI") == "true":
        import onnxruntime

        return onnxruntime
    return pytest.importorskip("onnxruntime")


def test_export_gives_the_students_actions_with_the_hidden_state_carried(tmp_path, teacher_ckpt):
    ort = _onnxruntime()
    assert _distill(tmp_path, teacher_ckpt) == 0
    ckpt = sorted(glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*" / "model_2.pt")))[-1]
    assert cli.main(["export", "--checkpoint", ckpt, "--out", str(tmp_path / "exp")]) == 0

    from dagmix.envs import make

    env = make("quadcopter", num_envs=1, seed=5, episode_length_s=1.0)
    loaded = load_checkpoint(ckpt)
    student = load_models("quadcopter", ckpt, loaded, "cpu", env)[0]["student"].eval()
    jit = torch.jit.load(str(tmp_path / "exp" / "policy.pt"))
    session = ort.InferenceSession(str(tmp_path / "exp" / "policy.onnx"))
    assert [i.name for i in session.get_inputs()] == ["obs", "h_in"]
    h = np.zeros(session.get_inputs()[1].shape, dtype=np.float32)
    obs = env.get_observations()
    expected, scripted, onnx = [], [], []
    with torch.inference_mode():
        for _ in range(50):  # one episode: the GRU's hidden state is carried through every step
            action = student(obs)
            x = obs["policy"].float()
            expected.append(action)
            scripted.append(jit(x))
            out, h = session.run(None, {"obs": x.numpy(), "h_in": h})
            onnx.append(torch.from_numpy(out))
            obs = env.step(action)[0]
    expected, scripted, onnx = torch.cat(expected), torch.cat(scripted), torch.cat(onnx)
    assert expected.abs().max() > 0 and not torch.allclose(expected[0], expected[-1])  # a real, changing sequence
    torch.testing.assert_close(scripted, expected, rtol=0.0, atol=1e-6)
    torch.testing.assert_close(onnx, expected, rtol=0.0, atol=1e-5)
    jit.reset()  # from a zero hidden state the last observation gives another action: the state was carried
    assert not torch.allclose(jit(x), scripted[-1], atol=1e-4)


def test_help_explains_every_subcommand(capsys):
    for sub in ("train-teacher", "distill", "eval", "export"):
        with pytest.raises(SystemExit):
            cli.main([sub, "--help"])
        assert "--" in capsys.readouterr().out


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit):
        cli.main(["distill", "--phase1_iteration", "5"])
    assert "unrecognized arguments: --phase1_iteration" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["train-teacher"], ["distill"], ["eval"], ["export"]])
def test_help_of_the_command_and_every_subcommand(command, capsys):
    # argparse formats help strings with %: a bare '%' crashed `dagmix --help` ("unsupported format character")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dagmix")
    if not command:
        for sub in ("train-teacher", "distill", "eval", "export"):
            assert sub in out
    subparsers = cli.build_parser()._subparsers._group_actions[0].choices  # every sub-command is covered above
    assert set(subparsers) == {"train-teacher", "distill", "eval", "export"}


def test_distill_the_thrown_quadcopter_with_its_shipped_teacher(tmp_path, capsys):
    """``--task quadcopter_thrown`` distills its own shipped teacher, which recovers from the thrown start."""
    from dagmix.envs.task_configs import shipped_teacher

    argv = ["distill", "--task", "quadcopter_thrown", *TINY, "--max_iterations", "2", "--log_root", str(tmp_path)]
    assert cli.main([*argv, "--eval_interval", "0", "--final_eval_episodes", "16", SHORT]) == 0
    assert glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_thrown_distillation" / "*" / "model_1.pt"))
    assert "student / teacher return:" in capsys.readouterr().out
    # the shipped teacher flies the thrown start (full 10 s episodes), where zero actions crash within a second
    path = tmp_path / "eval.json"
    teacher = shipped_teacher("quadcopter_thrown")
    assert (
        cli.main(
            [
                "eval",
                "--task",
                "quadcopter_thrown",
                "--checkpoint",
                teacher,
                "--num_episodes",
                "64",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    row = json.loads(path.read_text())["teacher"]
    assert row["success_rate"] >= 0.9 and row["return_mean"] > 100.0


def test_the_figure_is_skipped_with_one_line_without_matplotlib(tmp_path, teacher_ckpt, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert _distill(tmp_path, teacher_ckpt, "--final_eval_episodes", "0") == 0
    out = capsys.readouterr().out
    assert "[dagmix] no figure: matplotlib is not installed (pip install matplotlib)\n" in out
    assert not glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*" / "eval.png"))


def test_the_best_checkpoint_follows_the_rule_over_the_logged_evaluations(tmp_path, teacher_ckpt, capsys):
    """model_best.pt is the evaluation with the highest (success rate, return) among the printed ones."""
    import re

    assert _distill(tmp_path, teacher_ckpt, "--schedule", "teacher_only", "--final_eval_episodes", "0") == 0
    out = capsys.readouterr().out
    line = r"\[dagmix\] iteration (\d+): student alone over 8 episodes: return (-?[\d.]+) ± [\d.nan]+, success ([\d.]+)"
    evals = [(float(s), float(r), int(i)) for i, r, s in re.findall(line, out)]
    assert [e[2] for e in evals] == [0, 1, 2]
    best_it = max(evals, key=lambda e: (e[0], e[1]))[2]  # ties in both: the first (a later one must be better)
    (run,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_distillation" / "*"))
    assert load_checkpoint(os.path.join(run, "model_best.pt"), "cpu")["iter"] == best_it
