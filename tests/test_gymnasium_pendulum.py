"""The Pendulum example's pieces at tiny size: the student's observation, out-of-step episodes, the printed result."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")

from dagmix.integrations import gymnasium_pendulum as pendulum  # noqa: E402
from dagmix.integrations.gymnasium_env import GymnasiumVecEnv  # noqa: E402


def test_student_sees_cos_sin_and_the_applied_torque_never_the_velocity():
    env = pendulum.make_env(3, seed=0)
    obs = env.get_observations()
    assert obs["teacher"].shape == (3, 3) and obs["policy"].shape == (3, 3)
    assert torch.equal(obs["policy"][:, :2], obs["teacher"][:, :2])
    assert obs["policy"][:, 2].tolist() == [0.0, 0.0, 0.0]  # no torque before the first step
    obs, _, _, _ = env.step(torch.tensor([[5.0], [-1.0], [0.5]]))
    assert obs["policy"][:, 2].tolist() == [2.0, -1.0, 0.5]  # the torque the env applied (clipped to [-2, 2])
    assert torch.equal(obs["policy"][:, :2], obs["teacher"][:, :2])
    assert not torch.equal(obs["policy"][:, 2], obs["teacher"][:, 2])  # the velocity is the teacher's alone
    env.episode_length_buf = torch.tensor([0, 199, 0])  # env 1's episode ends at the next step
    obs, _, dones, _ = env.step(torch.ones(3, 1))
    assert dones.tolist() == [0, 1, 0]
    assert obs["policy"][:, 2].tolist() == [1.0, 0.0, 1.0]  # the reset observation carries no torque
    assert pendulum.make_env(2, last_action=False).get_observations()["policy"].shape == (2, 2)


def test_assigning_episode_length_buf_moves_each_envs_time_limit():
    env = pendulum.make_env(2, seed=1)
    env.episode_length_buf = torch.tensor([0, 198])
    _, _, dones, extras = env.step(torch.zeros(2, 1))
    assert dones.tolist() == [0, 0] and env.episode_length_buf.tolist() == [1, 199]
    _, _, dones, extras = env.step(torch.zeros(2, 1))
    assert dones.tolist() == [0, 1] and extras["time_outs"].tolist() == [False, True]
    assert env.episode_length_buf.tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"\[0, 200\)"):
        env.episode_length_buf = torch.tensor([0, 200])


def test_assigning_episode_length_buf_without_a_time_limit_says_what_to_do():
    class NoLimit(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(1, np.float32), {}

        def step(self, action):
            return np.zeros(1, np.float32), 0.0, False, False, {}

    env = GymnasiumVecEnv([NoLimit, NoLimit], max_episode_length=10)
    with pytest.raises(ValueError, match=r"TimeLimit.*init_at_random_ep_len=False"):
        env.episode_length_buf = torch.tensor([3, 4])


def test_defaults_take_32_gradient_steps_per_iteration_and_start_episodes_out_of_step(tmp_path):
    cfg = pendulum.train_cfg(pendulum.Args())["algorithm"]
    steps = pendulum.Args.num_steps_per_env
    assert (cfg["num_learning_epochs"] * steps) % cfg["gradient_length"] == 0  # no step left out of the loss
    assert cfg["num_learning_epochs"] * steps // cfg["gradient_length"] == 32
    tiny = {"num_envs": 8, "max_iterations": 1, "num_steps_per_env": 8, "schedule": {"schedule": "teacher_only"}}
    runner = pendulum.run(pendulum.Args(**tiny, log_dir=str(tmp_path / "run")))
    lengths = runner.env.episode_length_buf
    assert len(set(lengths.tolist())) > 1 and lengths.min() >= 0  # out of step, 8 steps after random starts
    synchronous = pendulum.run(pendulum.Args(**tiny, log_dir=str(tmp_path / "s"), init_at_random_ep_len=False))
    assert synchronous.env.episode_length_buf.tolist() == [8] * 8


def test_random_policy_return_and_the_normalisation():
    random = pendulum.random_return(num_envs=4, seed=3)
    assert -16.3 * 200 <= random < -400  # uniformly random torques do not swing up
    assert random == pendulum.random_return(num_envs=4, seed=3)  # seeded
    assert pendulum.normalized_return(-160.0, -160.0, random) == pytest.approx(1.0)
    assert pendulum.normalized_return(random, -160.0, random) == pytest.approx(0.0)
    assert pendulum.normalized_return(-300.0, -200.0, -1200.0) == pytest.approx(0.9)


def test_main_prints_student_teacher_random_and_normalised_returns(tmp_path, capsys):
    pendulum.main(
        ["--num-envs", "4", "--max-iterations", "1", "--schedule", "student_only", "--log-dir", str(tmp_path / "r")]
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(
        r"mean return over 100 fresh episodes: student (-?[\d.]+), teacher (-?[\d.]+), random (-?[\d.]+); "
        r"normalised \(student - random\) / \(teacher - random\): (-?[\d.]+)",
        line,
    )
    assert m, line
    student, teacher, random, norm = map(float, m.groups())
    assert teacher > -400 and random < -1000  # the scripted teacher swings up; the random policy does not
    assert norm == pytest.approx((student - random) / (teacher - random), abs=2e-3)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("two_stage", {"phase1_iterations": 7}),
        ("step", {"phase1_iterations": 7}),
        ("linear", {"iterations": 9}),
        ("dagger_linear", {"iterations": 9}),
        ("student_only", {}),
        ("dagger_exp", {}),
    ],
)
def test_main_passes_each_schedule_only_the_flags_it_takes(monkeypatch, name, expected):
    seen = []

    def fake_run(args):
        seen.append(args.schedule)
        raise KeyboardInterrupt  # stop before training

    monkeypatch.setattr(pendulum, "run", fake_run)
    with pytest.raises(KeyboardInterrupt):
        pendulum.main(["--schedule", name, "--phase1-iterations", "7", "--iterations", "9"])
    assert seen == [{"schedule": name, **expected}]


def test_main_rejects_an_unknown_schedule_naming_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as e:
        pendulum.main(["--schedule", "two_stag"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--schedule='two_stag' is not one of" in err and "'dagger_linear'" in err and "'two_stage'" in err
