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
