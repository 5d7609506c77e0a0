"""The dagmix command against hostile input: unsafe and broken files, bad configs, interrupted runs."""

from __future__ import annotations

import json
import os

import pytest
import torch
from test_checkpoint_io import write_malicious_checkpoint

from dagmix import cli
from dagmix.cli import runs as cli_runs
from dagmix.envs.task_configs import shipped_teacher

TINY = ["--num_envs", "16", "--seed", "3"]
SHORT = "env.episode_length_s=0.5"
NO_EVAL = ["--eval_interval", "0", "--final_eval_episodes", "0"]


def _teacher_dict() -> dict:
    return torch.load(shipped_teacher("quadcopter"), weights_only=True)


def _run_dir(root, name="2030-01-01_00-00-00") -> str:
    run = os.path.join(root, "rsl_rl", "quadcopter_distillation", name)
    os.makedirs(run, exist_ok=True)
    return run


@pytest.mark.parametrize("command", ["eval", "export", "distill", "resume"])
def test_malicious_checkpoint_is_refused_on_every_path(tmp_path, command, capsys):
    marker = tmp_path / "pwned"
    if command == "resume":
        evil = write_malicious_checkpoint(os.path.join(_run_dir(tmp_path), "model_5.pt"), marker, _teacher_dict())
        argv = ["distill", *TINY, "--resume", "--log_root", str(tmp_path), "--max_iterations", "1", *NO_EVAL]
    else:
        evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker, _teacher_dict())
        argv = {
            "eval": ["eval", "--checkpoint", evil, "--num_episodes", "4"],
            "export": ["export", "--checkpoint", evil, "--out", str(tmp_path / "exp")],
            "distill": ["distill", *TINY, "--checkpoint", evil, "--max_iterations", "1", "--log_root", str(tmp_path)],
        }[command]
        argv += NO_EVAL if command == "distill" else []
    with pytest.raises(SystemExit, match=r"evil\.pt|model_5\.pt") as info:
        cli.main([*argv, SHORT] if command != "export" else argv)
    assert "--unsafe_load" in str(info.value.code) and "\n" not in str(info.value.code)
    assert not marker.exists()
    assert os.path.basename(evil) in str(info.value.code)


def test_unsafe_load_opt_in_warns_and_loads(tmp_path):
    marker = tmp_path / "pwned"
    evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker, _teacher_dict())
    with pytest.warns(UserWarning, match="full unpickling"):
        assert cli.main(["eval", "--checkpoint", evil, "--num_episodes", "4", "--unsafe_load", SHORT]) == 0
    assert marker.exists()


def _distill_argv(root, *extra) -> list[str]:
    return ["distill", *TINY, "--max_iterations", "2", "--log_root", str(root), *NO_EVAL, SHORT, *extra]


def _runs(root) -> list[str]:
    base = os.path.join(root, "rsl_rl", "quadcopter_distillation")
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


@pytest.fixture(scope="module")
def distill_root(tmp_path_factory):
    """A log root holding one finished 2-iteration distillation run (model_0.pt, model_1.pt)."""
    root = tmp_path_factory.mktemp("logs")
    assert cli.main(_distill_argv(root, "--run_name", "real")) == 0
    return root


def test_resume_skips_broken_files_and_empty_runs(tmp_path, distill_root, capsys):
    import shutil

    shutil.copytree(distill_root, tmp_path, dirs_exist_ok=True)
    (real,) = _runs(tmp_path)
    broken = os.path.join(_run_dir(tmp_path, "2090-01-01_00-00-00_broken"), "model_9.pt")
    with open(os.path.join(tmp_path, "rsl_rl", "quadcopter_distillation", real, "model_1.pt"), "rb") as f:
        data = f.read()
    with open(broken, "wb") as f:
        f.write(data[: len(data) // 3])  # a save killed halfway (before dagmix wrote atomically)
    _run_dir(tmp_path, "2099-01-01_00-00-00_empty")  # a failed start (before dagmix created folders late)
    capsys.readouterr()
    assert cli.main(_distill_argv(tmp_path, "--resume", "--max_iterations", "1")) == 0
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if "skipping" in line]
    assert len(notices) == 1 and "model_9.pt" in notices[0]
    assert f"loading run checkpoint {os.path.join(str(tmp_path), 'rsl_rl', 'quadcopter_distillation', real)}" in out
    assert "model_1.pt" in out


def test_failed_starts_leave_no_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit, match="learnin_rate"):
        cli.main(_distill_argv(tmp_path, "algorithm.learnin_rate=1"))
    with pytest.raises(SystemExit, match="phase_1"):  # found only when the algorithm is built
        cli.main(_distill_argv(tmp_path, "algorithm.mixing.phase_1=3"))
    with pytest.raises(SystemExit, match="no run matching"):
        cli.main(_distill_argv(tmp_path, "--resume"))
    with pytest.raises(SystemExit, match="does not exist"):
        cli.main(_distill_argv(tmp_path, "--checkpoint", str(tmp_path / "nope.pt")))
    assert _runs(tmp_path) == []


def test_resume_refuses_a_ppo_checkpoint_and_distill_refuses_a_distillation_one(tmp_path, distill_root):
    run = _run_dir(tmp_path)
    torch.save(_teacher_dict(), os.path.join(run, "model_3.pt"))
    with pytest.raises(SystemExit, match=r"model_3\.pt, which is not a distillation checkpoint"):
        cli.main(_distill_argv(tmp_path, "--resume"))
    (real,) = _runs(distill_root)
    student_ckpt = os.path.join(distill_root, "rsl_rl", "quadcopter_distillation", real, "model_1.pt")
    with pytest.raises(SystemExit, match=r"is a distillation checkpoint, not a teacher.*--resume"):
        cli.main(_distill_argv(tmp_path, "--checkpoint", student_ckpt))
    assert _runs(tmp_path) == [os.path.basename(run)]


def _bad_file(tmp_path, kind: str) -> str:
    path = tmp_path / f"{kind}.pt"
    if kind == "truncated":
        data = open(shipped_teacher("quadcopter"), "rb").read()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"" if kind == "empty" else os.urandom(4096))
    return str(path)


BAD_INPUTS = [
    (["algorithm.learning_rate=abc"], r"algorithm\.learning_rate=abc is not a number"),
    (["num_steps_per_env=0"], r"num_steps_per_env=0 must be an integer >= 1"),
    (["algorithm.gradient_length=0"], r"algorithm\.gradient_length=0 must be"),
    (["algorithm.num_learning_epochs=0"], r"algorithm\.num_learning_epochs=0 must be"),
    (["save_interval=0"], r"save_interval=0 must be"),
    (["max_iterations=abc"], r"max_iterations=abc is not an integer"),
    (["--max_iterations", "-2"], r"max_iterations=-2 \(--max_iterations\) must be"),
    (["env.thrust_to_weight=abc"], r"env\.thrust_to_weight='abc' is not a number"),
    (["student.class_name=MLPModel"], r"student\.rnn_type.*not an argument of MLPModel.*student\.rnn_type=None"),
    (["env.num_envs=8"], r"env\.num_envs is not an env config key.*--num_envs"),
    (["--device", "cuda:99"], r"--device 'cuda:99' is not usable"),
    (["--device", "nonsense"], r"--device 'nonsense' is not usable"),
    (["--checkpoint", "{tmp}/missing.pt"], r"missing\.pt' does not exist"),
    (["--checkpoint", "{tmp}"], r"is not a file"),
    (["--checkpoint", "{truncated}"], r"truncated\.pt' is not a readable torch checkpoint"),
    (["--checkpoint", "{empty}"], r"empty\.pt' is empty"),
    (["--checkpoint", "{random}"], r"random\.pt' is not a readable torch checkpoint"),
    (["--log_root", "{truncated}/logs"], r"--log_root .*truncated\.pt/logs' is not a writable folder"),
    (["--eval_interval", "-1"], r"--eval_interval=-1 must be >= 0"),
]
if not torch.cuda.is_available():
    BAD_INPUTS.append((["--device", "cuda"], r"--device 'cuda' is not usable"))


@pytest.mark.parametrize(("extra", "match"), BAD_INPUTS, ids=[" ".join(e) for e, _ in BAD_INPUTS])
def test_plain_mistakes_are_one_line_errors_before_training(tmp_path, extra, match, capsys):
    files = {kind: _bad_file(tmp_path, kind) for kind in ("truncated", "empty", "random")}
    extra = [e.format(tmp=tmp_path, **files) for e in extra]
    root = tmp_path / "logs"
    argv = ["distill", *TINY, "--max_iterations", "2", "--log_root", str(root), *NO_EVAL, SHORT, *extra]
    with pytest.raises(SystemExit, match=match) as info:
        cli.main(argv)
    message = str(info.value.code)
    assert message.startswith("dagmix: ") and "\n" not in message
    assert "Iteration" not in capsys.readouterr().out  # before any training
    assert _runs(root) == []


def test_train_teacher_checks_its_config_too(tmp_path):
    argv = ["train-teacher", *TINY, "--log_root", str(tmp_path), "algorithm.num_mini_batches=0"]
    with pytest.raises(SystemExit, match=r"algorithm\.num_mini_batches=0 must be"):
        cli.main(argv)


@pytest.mark.parametrize("where", ["dir", "{truncated}/out.json", "{truncated}/sub/out.json"])
def test_eval_checks_the_json_path_before_evaluating(tmp_path, where, capsys):
    truncated = _bad_file(tmp_path, "truncated")
    (tmp_path / "dir").mkdir()
    target = os.path.join(str(tmp_path), where.format(truncated=truncated))  # nothing can be created below a file
    argv = ["eval", "--checkpoint", shipped_teacher("quadcopter"), "--num_episodes", "4", "--json", target, SHORT]
    with pytest.raises(SystemExit, match=r"--json"):
        cli.main(argv)
    assert "return" not in capsys.readouterr().out


def test_learn_with_a_negative_count_is_an_error(tmp_path):
    from helpers import make_runner

    r = make_runner(tmp_path, None)
    with pytest.raises(ValueError, match=r"num_learning_iterations=-1 must be >= 0"):
        r.learn(-1)


@pytest.fixture(scope="module")
def small_gru_run(tmp_path_factory):
    """A finished run whose student is not the default (a GRU of 32 units instead of 64)."""
    root = tmp_path_factory.mktemp("gru32")
    assert cli.main(_distill_argv(root, "student.rnn_hidden_dim=32")) == 0
    (run,) = _runs(root)
    return os.path.join(root, "rsl_rl", "quadcopter_distillation", run, "model_1.pt")


def test_the_checkpoint_stores_its_model_config(small_gru_run):
    model = torch.load(small_gru_run, weights_only=True)["dagmix"]["model"]
    assert model["student"]["class_name"] == "RNNModel" and model["student"]["rnn_hidden_dim"] == 32
    assert model["obs_groups"] == {"student": ["policy"], "teacher": ["teacher"]}


@pytest.mark.parametrize("where", ["run folder", "copied alone"])
def test_export_and_eval_use_the_checkpoints_model_config(tmp_path, small_gru_run, where, capsys):
    ckpt = small_gru_run
    if where == "copied alone":
        ckpt = str(tmp_path / "copied.pt")
        with open(small_gru_run, "rb") as src, open(ckpt, "wb") as dst:
            dst.write(src.read())
    assert cli.main(["export", "--checkpoint", ckpt, "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "policy.pt").is_file()
    assert cli.main(["eval", "--checkpoint", ckpt, "--num_episodes", "4", SHORT]) == 0
    assert "distillation checkpoint" in capsys.readouterr().out


def test_eval_refuses_model_overrides_instead_of_dropping_them(small_gru_run):
    argv = ["eval", "--checkpoint", small_gru_run, "--num_episodes", "4", "student.rnn_hidden_dim=16", SHORT]
    with pytest.raises(SystemExit, match=r"eval takes env\.key=value overrides only; 'student\.rnn_hidden_dim=16'"):
        cli.main(argv)
    with pytest.raises(SystemExit, match=r"env\.thrust_to_weight='x' is not a number"):
        cli.main(["eval", "--checkpoint", small_gru_run, "--num_episodes", "4", "env.thrust_to_weight=x"])


def test_the_two_stage_patch_keys_work_on_the_command_line(tmp_path, capsys):
    keys = ["algorithm.use_two_stage_training=True", "algorithm.phase1_iterations=1"]
    assert cli.main(_distill_argv(tmp_path, *keys)) == 0
    out = capsys.readouterr().out
    assert "Phase Iteration: 1/1 (Phase 1)" in out and "Training Phase: Phase 2 (student actions)" in out
    (run,) = _runs(tmp_path)
    with open(os.path.join(tmp_path, "rsl_rl", "quadcopter_distillation", run, "params", "agent.json")) as f:
        import json

        algorithm = json.load(f)["algorithm"]
    assert algorithm["use_two_stage_training"] is True and algorithm["phase1_iterations"] == 1
    assert "mixing" not in algorithm
    with pytest.raises(SystemExit, match="Both a non-empty 'mixing' and use_two_stage_training=True"):
        cli.main(_distill_argv(tmp_path, *keys, "--schedule", "linear"))


@pytest.mark.parametrize("algorithm", ["distillation", "dagger_ppo"])
def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch, algorithm):
    frozen = cli_runs.datetime(2030, 1, 2, 3, 4, 5)  # both runs see the same timestamp

    class Frozen(cli_runs.datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(cli_runs, "datetime", Frozen)
    for seed in ("1", "2"):
        argv = _distill_argv(tmp_path, "--algorithm", algorithm, "--max_iterations", "1", "--seed", seed)
        assert cli.main(argv) == 0
    experiment = os.path.join(tmp_path, "rsl_rl", os.listdir(os.path.join(tmp_path, "rsl_rl"))[0])
    runs = sorted(os.listdir(experiment))
    assert runs == ["2030-01-02_03-04-05", "2030-01-02_03-04-05_2"]
    seeds = [json.load(open(os.path.join(experiment, r, "params", "agent.json")))["seed"] for r in runs]
    assert seeds == [1, 2]  # each folder holds its own run's params (and checkpoints)
    assert all("model_0.pt" in os.listdir(os.path.join(experiment, r)) for r in runs)


def test_a_run_refused_before_it_starts_leaves_no_folder(tmp_path):
    with pytest.raises(SystemExit):
        cli.main(_distill_argv(tmp_path, "algorithm.learning_rate=-1"))
    experiment_root = os.path.join(tmp_path, "rsl_rl")
    leftovers = [d for _, dirs, files in os.walk(experiment_root) for d in dirs + files]
    assert not any(name.startswith("20") for name in leftovers), leftovers
