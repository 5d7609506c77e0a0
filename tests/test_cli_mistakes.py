"""The dagmix command against a user's mistakes (issue 32): one-line errors that name the key or file and the fix.

Each case must stop before training with ``dagmix: ...`` on one line, no traceback, and leave no run folder.
"""

from __future__ import annotations

import os

import pytest

from dagmix import cli
from dagmix.algorithms import _compat

TINY = ["--num_envs", "8", "--seed", "3"]
SHORT = "env.episode_length_s=0.5"
NO_EVAL = ["--eval_interval", "0", "--final_eval_episodes", "0"]
needs_ppo_models = pytest.mark.skipif(not _compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")


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
