"""Checks of the algorithm's config: resume mismatches and an ignored phase1_iterations warn; bad counts raise."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import make_runner

BASE = {"schedule": "constant", "beta": 0.5, "granularity": "step", "seed": 7}


@pytest.fixture
def saved(tmp_path, teacher_path) -> str:
    a = make_runner(tmp_path / "a", teacher_path, {"mixing": BASE}, log=True, save_interval=1)
    a.learn(2)
    return str(tmp_path / "a" / "logs" / "model_1.pt")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seed": 8}, r"mixing seed=7; this run uses seed=8"),
        ({"granularity": "iteration"}, r"mixing granularity='step'; this run uses granularity='iteration'"),
    ],
)
def test_resume_with_another_seed_or_granularity_warns(tmp_path, saved, change, match):
    b = make_runner(tmp_path / "b", None, {"mixing": {**BASE, **change}})
    with pytest.warns(UserWarning, match=match):
        b.load(saved)
    assert b.alg.mixing_policy.seed == change.get("seed", 7)
    assert b.alg.mixing_policy.granularity == change.get("granularity", "step")


def test_resume_with_the_same_mixing_is_silent_and_exact(tmp_path, saved):
    b = make_runner(tmp_path / "b", None, {"mixing": BASE})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b.load(saved)
    assert torch.equal(
        b.alg.mixing_policy.generator.get_state(), torch.load(saved)["dagmix"]["policy"]["generator_state"]
    )


def test_resume_with_another_run_seed_warns_when_the_mask_seed_is_derived(tmp_path, teacher_path):
    a = make_runner(tmp_path / "a", teacher_path, {"mixing": {"schedule": "constant", "beta": 0.5}}, log=True, seed=1)
    a.learn(2)
    b = make_runner(tmp_path / "b", None, {"mixing": {"schedule": "constant", "beta": 0.5}}, seed=2)
    with pytest.warns(UserWarning, match=r"mixing seed=\d+; this run uses seed=\d+"):
        b.load(str(tmp_path / "a" / "logs" / "model_1.pt"))


@pytest.mark.parametrize(
    ("algo", "match"),
    [
        ({"phase1_iterations": 3}, r"phase1_iterations=3 is ignored: it is read only with use_two_stage_training"),
        (
            {"phase1_iterations": 3, "mixing": {"schedule": "two_stage", "phase1_iterations": 5}},
            r"phase1_iterations=3 is ignored: the mixing dict sets its own phase1_iterations=5",
        ),
    ],
)
def test_phase1_iterations_alone_warns_that_it_is_ignored(tmp_path, algo, match):
    with pytest.warns(UserWarning, match=match):
        make_runner(tmp_path, None, algo)


@pytest.mark.parametrize(
    "algo",
    [
        {"use_two_stage_training": True, "phase1_iterations": 3},
        {"use_two_stage_training": False, "phase1_iterations": 500, "mixing": {"schedule": "linear", "iterations": 4}},
    ],
)
def test_phase1_iterations_with_the_switch_is_silent(tmp_path, algo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_runner(tmp_path, None, algo)


@pytest.mark.parametrize(
    ("algo", "cfg", "match"),
    [
        ({"gradient_length": 0}, {}, r"gradient_length=0 must be an integer >= 1"),
        ({"num_learning_epochs": 0}, {}, r"num_learning_epochs=0 must be an integer >= 1"),
        ({}, {"save_interval": 0}, r"save_interval=0 must be an integer >= 1"),
        ({}, {"steps": 0}, r"num_steps_per_env=0 must be an integer >= 1"),
    ],
)
def test_counts_rsl_rl_divides_by_are_checked_at_construction(tmp_path, algo, cfg, match):
    with pytest.raises(ValueError, match=match):
        make_runner(tmp_path, None, algo, **cfg)
