"""The dagmix command against hostile input: unsafe and broken files, bad configs, interrupted runs."""

from __future__ import annotations

import os

import pytest
import torch
from test_checkpoint_io import write_malicious_checkpoint

from dagmix import cli
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
