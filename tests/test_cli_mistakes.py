"""The dagmix command against a user's mistakes (issue 32): one-line errors that name the key or file and the fix.

Each case must stop before training with ``dagmix: ...`` on one line, no traceback, and leave no run folder.
"""

from __future__ import annotations

import os
import re

import pytest

from dagmix import cli
from dagmix.algorithms import compat

TINY = ["--num_envs", "8", "--seed", "3"]
SHORT = "env.episode_length_s=0.5"
NO_EVAL = ["--eval_interval", "0", "--final_eval_episodes", "0"]
needs_ppo_models = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")


def _argv(root, algorithm: str, *extra: str) -> list[str]:
    argv = ["distill", "--algorithm", algorithm, *TINY, "--max_iterations", "2", "--log_root", str(root), *NO_EVAL]
    return [*argv, SHORT, *extra]


def _run_folders(root) -> list[str]:
    """Every run folder under ``root`` (whatever the experiment)."""
    base = os.path.join(root, "rsl_rl")
    if not os.path.isdir(base):
        return []
    return sorted(run for exp in os.listdir(base) for run in os.listdir(os.path.join(base, exp)))


def refused(argv: list[str], match: str, capsys, root=None) -> str:
    """Run ``argv``; assert a one-line ``dagmix:`` error matching ``match``, before training, no run folder left."""
    with pytest.raises(SystemExit, match=match) as info:
        cli.main(argv)
    message = str(info.value.code)
    assert message.startswith("dagmix: ") and "\n" not in message, message
    assert "Iteration" not in capsys.readouterr().out  # before any training
    if root is not None:
        assert _run_folders(root) == []
    return message


@needs_ppo_models
@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("algorithm.imitation_coef=abc", r"algorithm\.imitation_coef=abc is neither a number nor a schedule dict"),
        ("algorithm.ppo_coef=[1]", r"algorithm\.ppo_coef=\[1\] is neither a number nor a schedule dict"),
        ("algorithm.mixing.seed=1180591620717411303424", r"mixing\.seed=1180591620717411303424 does not fit 64 bits"),
    ],
)
def test_dagger_ppo_config_mistakes_name_the_key_and_the_forms_it_takes(tmp_path, override, match, capsys):
    refused(_argv(tmp_path, "dagger_ppo", override), match, capsys, tmp_path)


def test_a_seed_beyond_64_bits_is_refused_before_the_run(tmp_path, capsys):
    refused(_argv(tmp_path, "distillation", "--seed", str(2**70)), r"seed=\d+ \(--seed\) does not fit 64 bits", capsys)
    refused(_argv(tmp_path, "distillation", "algorithm.mixing.seed=" + str(2**70)), "does not fit 64 bits", capsys)
    assert _run_folders(tmp_path) == []


ENV_MISTAKES = [
    ("quadcopter", "env.mass=1e999", r"QuadcopterEnvCfg\.mass=inf must be a finite number"),
    ("quadcopter", "env.inertia=['a','b','c']", r"QuadcopterEnvCfg\.inertia=\('a', 'b', 'c'\) must be 3 finite"),
    ("quadcopter", "env.goal_z_range=[0.5,'x']", r"QuadcopterEnvCfg\.goal_z_range=\(0\.5, 'x'\) must be 2 finite"),
    ("quadcopter", "env.mass_range=[0.8]", r"QuadcopterEnvCfg\.mass_range=\(0\.8,\) must be 2 finite numbers"),
    (
        "quadcopter",
        "env.velocity_noise=1e999",
        r"velocity_noise=inf must be None .* >= 0 \(finite: an infinite noise makes the student's observations inf",
    ),
    ("cue_doors", "env.step_reward=-1e999", r"CueDoorsEnvCfg\.step_reward=-inf must be a finite number"),
]


@pytest.mark.parametrize(("task", "override", "match"), ENV_MISTAKES, ids=[o for _, o, _ in ENV_MISTAKES])
def test_env_overrides_that_cannot_work_name_the_field(tmp_path, task, override, match, capsys):
    argv = ["distill", "--task", task, *TINY, "--max_iterations", "2", "--log_root", str(tmp_path), *NO_EVAL]
    refused([*argv, override], match, capsys, tmp_path)


def test_env_configs_check_types_and_finiteness_in_python_too():
    from dagmix.envs.cue_doors import CueDoorsEnvCfg
    from dagmix.envs.quadcopter import QuadcopterEnvCfg

    with pytest.raises(ValueError, match=r"QuadcopterEnvCfg\.gravity='9' must be a finite number"):
        QuadcopterEnvCfg(gravity="9")
    with pytest.raises(ValueError, match=r"QuadcopterEnvCfg\.thrust_to_weight_range=\(2\.0, nan\) must be 2 finite"):
        QuadcopterEnvCfg(thrust_to_weight_range=(2.0, float("nan")))
    with pytest.raises(ValueError, match=r"CueDoorsEnvCfg\.dt=True must be a finite number"):
        CueDoorsEnvCfg(dt=True)
    assert QuadcopterEnvCfg(velocity_noise=None, mass_range=[1, 1]).mass_range == [1, 1]  # ints, lists: fine
    with pytest.raises(ValueError, match=r"QuadcopterEnvCfg\.mass=1000.* must be a finite number"):
        QuadcopterEnvCfg(mass=10**400)  # an int beyond a float's range: not an OverflowError traceback


def _finished_run(root, algorithm: str, *extra: str) -> str:
    """Run a tiny ``dagmix distill`` and return its last checkpoint (model_1.pt)."""
    assert cli.main(_argv(root, algorithm, *extra)) == 0
    experiment = os.path.join(root, "rsl_rl", f"quadcopter_{algorithm}")
    (run,) = os.listdir(experiment)
    return os.path.join(experiment, run, "model_1.pt")


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> str:
    """The last checkpoint of a finished distillation run (default GRU student, 16 observations)."""
    return _finished_run(tmp_path_factory.mktemp("distilled"), "distillation")


@pytest.fixture(scope="module")
def dagger_ppo_run(tmp_path_factory) -> str:
    """The last checkpoint of a MixingDAggerPPO run with a non-default actor (an MLP) and other dynamics."""
    if not compat.PPO_WITH_MODELS:
        pytest.skip("MixingDAggerPPO needs rsl-rl-lib 5.x")
    mlp = ["actor.class_name=MLPModel", "actor.hidden_dims=[32,32]"]
    mlp += [f"actor.{k}=None" for k in ("rnn_type", "rnn_hidden_dim", "rnn_num_layers")]
    root = tmp_path_factory.mktemp("dagger_ppo")
    return _finished_run(root, "dagger_ppo", *mlp, "env.thrust_to_weight_range=[1.2,1.2]")


def _bad_file(tmp_path, kind: str, good: str) -> str:
    path = tmp_path / f"{kind}.pt"
    data = open(good, "rb").read()
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "corrupt": os.urandom(4096)}[kind])
    return str(path)


@needs_ppo_models
@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("empty", r"init_student: Checkpoint '.*empty\.pt' is empty"),
        ("truncated", r"init_student: Checkpoint '.*truncated\.pt' is not a readable torch checkpoint"),
        ("corrupt", r"init_student: Checkpoint '.*corrupt\.pt' is not a readable torch checkpoint"),
        ("folder", r"init_student: Checkpoint '.*folder\.pt' is not a file"),
    ],
)
def test_init_student_that_is_not_a_checkpoint(tmp_path, distilled, kind, match, capsys):
    bad = _bad_file(tmp_path, kind, distilled)
    refused(_argv(tmp_path / "logs", "dagger_ppo", "--init_student", bad), match, capsys, tmp_path / "logs")


@needs_ppo_models
@pytest.mark.parametrize(
    ("override", "gist"),
    [
        ("actor.rnn_hidden_dim=32", r"is \(64, 128\) in the checkpoint, \(64, 32\) in the model"),
        ("env.velocity_noise=None", r"is \(1, 16\) in the checkpoint, \(1, 13\) in the model"),
    ],
)
def test_init_student_of_another_size_or_observation_count(tmp_path, distilled, override, gist, capsys):
    argv = _argv(tmp_path, "dagger_ppo", "--init_student", distilled, override)
    message = refused(argv, r"init_student=.*model_1\.pt': its student does not fit the actor of this config", capsys)
    assert re.search(gist, message) and "params/agent.json" in message
    assert _run_folders(tmp_path) == []


@pytest.mark.parametrize("algorithm", ["distillation", pytest.param("dagger_ppo", marks=needs_ppo_models)])
@pytest.mark.parametrize("groups", ["['policy']", "['teacher','policy']"])
def test_teacher_observation_groups_that_do_not_fit_the_teacher(tmp_path, algorithm, groups, capsys):
    message = refused(
        _argv(tmp_path, algorithm, f"obs_groups.teacher={groups}"),
        r"the teacher in --checkpoint .*quadcopter_teacher\.pt does not fit the teacher of this config",
        capsys,
        tmp_path,
    )
    assert "in the checkpoint" in message and "obs_groups.teacher (now [" in message


@pytest.mark.parametrize(
    ("algorithm", "section"), [("distillation", "student"), pytest.param("dagger_ppo", "actor", marks=needs_ppo_models)]
)
@pytest.mark.parametrize("change", ["size", "velocity_noise"])
def test_resume_after_changing_the_model_or_the_observations(tmp_path, algorithm, section, change, capsys):
    _finished_run(tmp_path, algorithm)
    (before,) = _run_folders(tmp_path)
    capsys.readouterr()
    override, named = {
        "size": (f"{section}.rnn_hidden_dim=32", f"{section}.rnn_hidden_dim=128 (now 32)"),
        "velocity_noise": ("env.velocity_noise=None", "env.velocity_noise left at its default (passed None)"),
    }[change]
    message = refused(_argv(tmp_path, algorithm, "--resume", override), r"--resume: .*model_1\.pt does not fit", capsys)
    assert f"This command differs from that run in: {named}." in message
    assert _run_folders(tmp_path) == [before]  # no new folder


@pytest.mark.parametrize("where", ["run folder", "copied alone"])
def test_dagger_ppo_checkpoints_store_their_model_config_for_eval_and_export(tmp_path, dagger_ppo_run, where, capsys):
    import torch

    model = torch.load(dagger_ppo_run, weights_only=True)["dagmix"]["model"]
    assert model["actor"]["class_name"] == "MLPModel" and model["actor"]["hidden_dims"] == [32, 32]
    assert model["obs_groups"]["actor"] == ["policy"] and model["teacher"]["class_name"] == "MLPModel"
    ckpt = dagger_ppo_run
    if where == "copied alone":
        ckpt = str(tmp_path / "copied.pt")
        with open(dagger_ppo_run, "rb") as src, open(ckpt, "wb") as dst:
            dst.write(src.read())
    assert cli.main(["export", "--checkpoint", ckpt, "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "policy.onnx").is_file()
    argv = ["eval", "--checkpoint", ckpt, "--num_episodes", "4", SHORT, "env.thrust_to_weight_range=[1.2,1.2]"]
    assert cli.main(argv) == 0
    assert "MixingDAggerPPO checkpoint" in capsys.readouterr().out
    for command in (["eval", "--num_episodes", "4"], ["export", "--out", str(tmp_path / "exp2")]):
        argv = [*command, "--checkpoint", ckpt, "env.velocity_noise=None"]
        message = refused(argv, r"the weights in .*\.pt do not fit the model config from the checkpoint", capsys)
        assert "(1, 16) in the checkpoint, (1, 13) in the model" in message
        assert "env.velocity_noise=None (passed)" in message and "drop it" in message


def test_eval_notes_a_run_made_on_other_dynamics(dagger_ppo_run, capsys):
    assert cli.main(["eval", "--checkpoint", dagger_ppo_run, "--num_episodes", "4", SHORT]) == 0
    out = capsys.readouterr().out
    note = [line for line in out.splitlines() if line.startswith("[dagmix] note:")]
    assert len(note) == 1 and "env.thrust_to_weight_range=[1.2, 1.2] (not passed)" in note[0]
    argv = [
        "eval",
        "--checkpoint",
        dagger_ppo_run,
        "--num_episodes",
        "4",
        SHORT,
        "env.thrust_to_weight_range=[1.2,1.2]",
    ]
    assert cli.main(argv) == 0
    assert "note:" not in capsys.readouterr().out  # the run's own env: nothing to note


def test_the_hint_never_asks_for_what_was_passed(tmp_path, distilled, capsys):
    ckpt = str(tmp_path / "copied.pt")  # no params/env.json beside it: the hint cannot read the run's settings
    with open(distilled, "rb") as src, open(ckpt, "wb") as dst:
        dst.write(src.read())
    message = refused(
        ["eval", "--checkpoint", ckpt, "--num_episodes", "4", "env.velocity_noise=None"], "do not fit", capsys
    )
    assert "add env.velocity_noise=None" not in message
    assert "env.velocity_noise=None (passed)" in message and "drop it" in message
