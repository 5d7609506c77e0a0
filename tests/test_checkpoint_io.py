"""Checkpoints: loaded with weights_only=True (full unpickling only on opt-in), written atomically."""

from __future__ import annotations

import io
import os

import pytest
import torch
from helpers import make_runner

from dagmix.algorithms import compat
from dagmix.algorithms.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint
from dagmix.envs.task_configs import shipped_teacher


class _Payload:
    """Unpickling this runs os.mkdir(marker): a stand-in for a malicious ``__reduce__``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def write_malicious_checkpoint(path, marker, base: dict | None = None) -> str:
    """Save ``base`` (default: a tiny dict) with an ``infos`` entry whose unpickling creates the folder ``marker``."""
    saved = dict(base or {"iter": 0})
    saved["infos"] = {"note": _Payload(str(marker))}
    torch.save(saved, path)
    return str(path)


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = write_malicious_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*mkdir.*--unsafe_load.*unsafe_load=True") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    with pytest.warns(UserWarning, match="full unpickling"):
        load_checkpoint(path, unsafe_load=True)
    assert marker.exists()  # the opt-in really unpickles fully


def test_shipped_teacher_and_dagmix_checkpoints_load_with_weights_only(tmp_path, teacher_path):
    assert "actor_state_dict" in load_checkpoint(shipped_teacher("quadcopter"))
    algo = {"mixing": {"schedule": "loss_triggered", "threshold": 0.1, "patience": 2, "deadline": 5}}
    r = make_runner(tmp_path, teacher_path, algo, student="gru", log=True, save_interval=1)
    r.learn(2)
    (saved,) = sorted((tmp_path / "logs").glob("model_1.pt"))
    loaded = load_checkpoint(saved)
    assert loaded["iter"] == 1 and "dagmix" in loaded


def test_the_runner_loads_with_weights_only_and_opts_in_with_a_warning(tmp_path, teacher_path):
    r = make_runner(tmp_path, None)
    marker = tmp_path / "pwned"
    evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker, torch.load(teacher_path, weights_only=True))
    with pytest.raises(CheckpointError, match="unsafe_load=True"):
        r.load(evil)
    assert not marker.exists() and not r.alg.teacher_loaded
    with pytest.warns(UserWarning, match="full unpickling"):
        r.load(evil, unsafe_load=True)
    assert marker.exists() and r.alg.teacher_loaded


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "is empty"), (b"\x00\x17garbage" * 50, "not a readable torch checkpoint"), (None, "truncated")],
)
def test_broken_files_are_one_line_errors_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content is None:  # a truncated real checkpoint
        torch.save({"w": torch.zeros(100_000)}, path)
        path.write_bytes(path.read_bytes()[:20_000])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "bad.pt" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def _interrupt_torch_save(monkeypatch):
    """Make torch.save write half its bytes and then die, as a kill during a save does."""
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(data)
        else:
            f.write(data)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)


def test_a_kill_during_a_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model_best.pt"
    save_checkpoint({"iter": 1, "w": torch.ones(1000)}, path)
    _interrupt_torch_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"iter": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["iter"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_best.pt"]  # no temporary file left behind


def test_runner_saves_atomically(tmp_path, teacher_path, monkeypatch):
    r = make_runner(tmp_path, teacher_path)
    path = tmp_path / "model_0.pt"
    r.save(str(path))
    before = load_checkpoint(path)
    r.current_learning_iteration = 7
    _interrupt_torch_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        r.save(str(path))
    monkeypatch.undo()
    after = load_checkpoint(path)
    assert after["iter"] == before["iter"] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["model_0.pt", "teacher.pt"]


@pytest.mark.parametrize("runner", ["mixing", "stock"] if compat.RESOLVES_CLASS_PATHS else ["mixing"])
def test_checkpoints_hold_the_model_config(tmp_path, teacher_path, runner):
    from helpers import make_train_cfg

    r = make_runner(tmp_path, teacher_path, runner=runner, student="gru")
    r.save(str(tmp_path / "model_0.pt"))
    model = load_checkpoint(tmp_path / "model_0.pt")["dagmix"]["model"]
    cfg = make_train_cfg(student="gru")
    section = "policy" if compat.STUDENT_TEACHER_POLICY else "student"
    assert model[section] == cfg[section] and model["obs_groups"] == cfg["obs_groups"]


UPSTREAM_RUNNER = '''
import sys

import torch
from rsl_rl.runners import OnPolicyRunner


class UpstreamRunner(OnPolicyRunner):
    """Stands for mjlab's runner: its load calls torch.load itself; its save adds to infos and calls rsl_rl's."""

    def load(self, path, load_cfg=None, strict=True, map_location=None):
        self.seen_torch_load, self.seen_global_load = torch.load, sys.modules["torch"].load
        loaded = torch.load(path, map_location=map_location, weights_only=False)
        if self.alg.load(loaded, load_cfg, strict):
            self.current_learning_iteration = loaded["iter"]
        return loaded["infos"]

    def save(self, path, infos=None):
        super().save(path, {**(infos or {}), "env_state": {"common_step_counter": 7}})
'''


@pytest.mark.skipif(compat.STUDENT_TEACHER_POLICY, reason="rsl-rl 3.x runners save and load through dagmix only")
def test_an_upstream_runner_that_calls_torch_itself_is_patched_in_its_module_for_the_call(
    tmp_path, teacher_path, monkeypatch
):
    import sys
    import types

    from helpers import make_env, make_train_cfg

    from dagmix.algorithms import MixingDistillationRunner

    upstream = types.ModuleType("upstream_runner")  # a runner package outside rsl_rl, as mjlab.rl.runner
    monkeypatch.setitem(sys.modules, upstream.__name__, upstream)
    exec(UPSTREAM_RUNNER, vars(upstream))

    class Runner(MixingDistillationRunner, upstream.UpstreamRunner):
        pass

    real_load, real_save = torch.load, torch.save
    r = Runner(make_env(), make_train_cfg(), None, "cpu")
    marker = tmp_path / "pwned"
    evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker, torch.load(teacher_path, weights_only=True))
    with pytest.raises(CheckpointError, match="unsafe_load=True"):
        r.load(evil)
    assert not marker.exists() and not r.alg.teacher_loaded
    assert r.seen_torch_load is not real_load and r.seen_global_load is real_load  # its module's name, not torch's
    assert upstream.torch is torch  # and only for the call
    r.load(teacher_path)
    assert r.alg.teacher_loaded

    r.current_learning_iteration = 3
    r.save(str(tmp_path / "model_3.pt"))  # the upstream save's infos kept, written by save_checkpoint
    assert load_checkpoint(tmp_path / "model_3.pt")["infos"] == {"env_state": {"common_step_counter": 7}}
    _interrupt_torch_save(monkeypatch)
    r.current_learning_iteration = 4
    with pytest.raises(KeyboardInterrupt):
        r.save(str(tmp_path / "model_3.pt"))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "model_3.pt")["iter"] == 3  # atomic: the previous file survives
    assert torch.load is real_load and torch.save is real_save


def test_a_missing_or_extra_weight_is_named_in_full():
    from dagmix.algorithms.checkpoint_io import state_dict_mismatch

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError) as missing:
        model.load_state_dict({"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2)})
    assert state_dict_mismatch(missing.value) == "weights the checkpoint lacks: 1.weight, 1.bias"
    extra = {**model.state_dict(), "2.weight": torch.zeros(1)}
    with pytest.raises(RuntimeError) as unexpected:
        model.load_state_dict(extra)
    assert state_dict_mismatch(unexpected.value) == "extra weights: 2.weight"
