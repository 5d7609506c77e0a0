"""A callable teacher's output is validated once: shape (num_envs, num_actions), floating dtype, device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_runner

from dagmix.integrations.callable_teacher import use_callable_teacher


def one_row(obs):
    return torch.zeros(1, 2)  # broadcast to every env by torch.where: every env labelled with env 0's action


def scalar(obs):
    return torch.tensor(0.5)


def as_numpy(obs):
    return np.zeros((obs.shape[0], 2), dtype=np.float32)


def as_list(obs):
    return [[0.0, 0.0]] * obs.shape[0]


def returns_none(obs):
    return None


def integers(obs):
    return torch.zeros(obs.shape[0], 2, dtype=torch.long)


def good(obs):
    return torch.tanh(obs[:, :2])


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (one_row, r"shape \(1, 2\)"),
        (scalar, r"shape \(\)"),
        (as_numpy, "returned ndarray"),
        (as_list, "returned list"),
        (returns_none, "returned NoneType"),
        (integers, "dtype torch.int64"),
    ],
)
def test_bad_teacher_output_is_a_clear_error_naming_the_function(tmp_path, fn, match):
    r = make_runner(tmp_path, None, {"mixing": {"schedule": "constant", "beta": 0.5}})
    use_callable_teacher(r, fn)
    with pytest.raises(ValueError, match=rf"teacher function .*\.{fn.__name__} .*{match}.*\(16, 2\) on cpu") as e:
        r.learn(1)
    assert "\n" not in str(e.value)


def test_good_teacher_output_is_checked_once_per_function(tmp_path):
    r = make_runner(tmp_path, None, {"mixing": {"schedule": "constant", "beta": 0.5}})
    teacher = use_callable_teacher(r, good)
    r.learn(1)
    assert teacher._checked_fn is good
    use_callable_teacher(r, one_row)  # a new function is checked again
    with pytest.raises(ValueError, match="one_row"):
        r.learn(1)
