"""The gymnasium adapter and the callable teacher, end to end on Pendulum-v1 (CPU, seconds)."""

from __future__ import annotations

import glob

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")

from dagmix.algorithms import MixingDistillationRunner, compat  # noqa: E402
from dagmix.integrations import gymnasium_pendulum as pendulum  # noqa: E402
from dagmix.integrations.callable_teacher import CallableTeacher, use_callable_teacher  # noqa: E402
from dagmix.integrations.gymnasium_env import GymnasiumVecEnv  # noqa: E402

BAR = "=" * 80


class Countdown(gym.Env):
    """Observation (k, 10 k); terminates when k reaches 0 from ``start``, truncates after ``limit`` steps."""

    def __init__(self, start: int, limit: int = 100) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.start, self.limit = start, limit

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.t = self.start, 0
        return np.array([self.k, 10 * self.k], np.float32), {}

    def step(self, action):
        self.k -= 1
        self.t += 1
        obs = np.array([self.k, 10 * self.k], np.float32)
        return obs, 1.0, self.k == 0, self.t >= self.limit and self.k != 0, {}


def test_reset_observation_arrives_in_the_same_step_as_done():
    env = GymnasiumVecEnv(
        [lambda: Countdown(2), lambda: Countdown(3, limit=1)],
        policy_obs=lambda o: o[:, :1],
        max_episode_length=100,
    )
    obs = env.get_observations()
    assert obs["policy"].shape == (2, 1) and obs["teacher"].shape == (2, 2)
    assert env.num_envs == 2 and env.num_actions == 1
    obs, rew, dones, extras = env.step(torch.zeros(2, 1))
    # env 1 truncates at its first step: its returned observation is already the reset one (k = 3)
    assert dones.tolist() == [0, 1] and extras["time_outs"].tolist() == [False, True]
    assert obs["teacher"][1].tolist() == [3.0, 30.0] and obs["teacher"][0].tolist() == [1.0, 10.0]
    obs, rew, dones, extras = env.step(torch.zeros(2, 1))
    # env 0 terminates (k hits 0): done, not a time-out, and its reset observation (k = 2) comes with it
    assert dones.tolist() == [1, 1] and extras["time_outs"].tolist() == [False, True]
    assert obs["teacher"][0].tolist() == [2.0, 20.0] and obs["policy"][0].tolist() == [2.0]
    assert env.episode_length_buf.tolist() == [0, 0]
    assert rew.dtype == torch.float32 and dones.dtype == torch.long


def test_next_step_autoreset_vector_env_is_refused_with_the_fix():
    vec = gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync")
    with pytest.raises(ValueError, match=r"SAME_STEP"):
        GymnasiumVecEnv(vec)
    same = gym.make_vec(
        "Pendulum-v1",
        2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    assert GymnasiumVecEnv(same).max_episode_length == 200


def test_scripted_teacher_swings_the_pendulum_up():
    env = pendulum.make_env(8, seed=3)
    obs = env.get_observations()
    total = torch.zeros(8)
    for _ in range(200):
        obs, rew, _, _ = env.step(pendulum.pendulum_expert(obs["teacher"]))
        total += rew
    # a random policy scores about -1200 per episode on Pendulum-v1; this controller swings up and balances
    assert total.mean() > -400, total


def test_pendulum_distillation_end_to_end(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = pendulum.Args(
        num_envs=8,
        max_iterations=3,
        num_steps_per_env=8,
        schedule={"schedule": "two_stage", "phase1_iterations": 1},
        log_dir=str(tmp_path / "run"),
    )
    runner = pendulum.run(args)
    out = capsys.readouterr().out
    assert out.count("Training Phase: Phase 1 (teacher actions)") == 1
    assert out.count("Training Phase: Phase 2 (student actions)") == 2
    assert "Phase Iteration: 1/1 (Phase 1)" in out
    assert (
        f"{BAR}\n{BAR}\n  SWITCHING TO PHASE 2: Now using STUDENT actions to update environment\n  Iteration: 1\n"
        in out
    )
    alg = runner.alg
    assert alg.last_metrics["Distillation/beta"] == 0.0
    assert torch.equal(alg.executed_actions, alg.storage.actions)  # last iteration: the student drove
    getattr(runner, "logger", runner).writer.flush()
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    beta = {e.step: e.value for e in acc.Scalars("Distillation/beta")}
    assert beta == {0: 1.0, 1: 0.0, 2: 0.0}
    assert {e.step for e in acc.Scalars("Distillation/behavior_loss_teacher_driven")} == {0}

    # the checkpoint loads: into a runner built from the same config (the student acts identically) ...
    ckpt = sorted(glob.glob(str(tmp_path / "run" / "model_*.pt")))[-1]
    env = pendulum.make_env(8, seed=5)
    if compat.STUDENT_TEACHER_POLICY:  # 3.x: the teacher network is replaced, before loading, as in training
        other = MixingDistillationRunner(env, pendulum.train_cfg(args), str(tmp_path / "other"), "cpu")
        use_callable_teacher(other, pendulum.pendulum_expert)
    else:  # 4.x/5.x: rsl_rl's own runner builds the CallableTeacher from the config, without its function
        from rsl_rl.runners import DistillationRunner

        cfg = pendulum.train_cfg(args)
        cfg["algorithm"]["class_name"] = "Distillation"
        other = DistillationRunner(env, cfg, None, "cpu")
        assert isinstance(other.alg.teacher, CallableTeacher) and other.alg.teacher.fn is None
    other.load(ckpt)
    obs = env.get_observations()
    for r in (runner, other):
        r.alg.get_policy().reset()  # the GRU student starts both from a zero hidden state
    with torch.inference_mode():
        a = runner.get_inference_policy()(obs)
        b = other.get_inference_policy()(obs)
    assert torch.equal(a, b)
    returns = pendulum.evaluate(runner, num_envs=4)
    assert set(returns) == {"student", "teacher"}
    assert all(-16.3 * 200 <= v <= 0 for v in returns.values())  # Pendulum-v1 rewards lie in [-16.3, 0]


def test_teacher_drives_phase_one_with_the_callable(tmp_path):
    args = pendulum.Args(num_envs=8, max_iterations=1, num_steps_per_env=4, log_dir=str(tmp_path / "run"))
    args.schedule = {"schedule": "teacher_only"}
    env = pendulum.make_env(8)
    runner = MixingDistillationRunner(env, pendulum.train_cfg(args), args.log_dir, "cpu")
    calls = []

    def expert(obs):
        calls.append(obs.shape)
        return pendulum.pendulum_expert(obs)

    use_callable_teacher(runner, expert)
    runner.learn(1)
    assert calls and all(s == (8, 3) for s in calls)  # the teacher group: the full observation
    alg = runner.alg
    assert torch.equal(alg.executed_actions, alg.storage.privileged_actions)
    assert alg.storage.privileged_actions.abs().max() <= 2.0


def test_callable_teacher_without_function_says_how_to_attach_one():
    t = CallableTeacher(output_dim=1)
    with pytest.raises(ValueError, match="use_callable_teacher"):
        t(torch.zeros(2, 3))
    assert set(t.state_dict()) == {"num_actions"}


def test_same_episodes_replay_the_pendulum_starts_for_every_policy():
    from dagmix.envs.evaluation import SameEpisodes

    env = pendulum.make_env(8, seed=5)
    starts = []

    def first_obs(policy):
        def run(obs):
            if not run.seen:
                starts.append(obs["teacher"].clone())
                run.seen = True
            return policy(obs)

        run.seen = False
        return run

    class Wrap(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, obs):
            return self.fn(obs)

        def reset(self, dones=None):
            pass

    episodes = SameEpisodes(env, 8)
    zero = episodes(Wrap(first_obs(lambda o: torch.zeros(8, 1))))
    full = episodes(Wrap(first_obs(lambda o: torch.ones(8, 1))))
    assert torch.equal(starts[0], starts[1]) and zero.return_mean != full.return_mean
    assert episodes(Wrap(lambda o: torch.zeros(8, 1))).return_mean == zero.return_mean
    unseeded = pendulum.make_env(2, seed=None)
    with pytest.raises(ValueError, match="unseeded"):
        SameEpisodes(unseeded, 2)(Wrap(lambda o: torch.zeros(2, 1)))
