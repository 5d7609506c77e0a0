"""The mjlab Cartpole swing-up of the schedule benchmark: its env, its distillation config and its shipped teacher."""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("DAGMIX_REQUIRE_MJLAB") != "1":
    pytest.importorskip("mjlab")

from dagmix.algorithms import MixingDistillationRunner  # noqa: E402
from dagmix.integrations import mjlab_bench  # noqa: E402


def _zero_steps(env, steps):
    obs, _ = env.reset()
    seen = [obs["actor"].clone()]
    for _ in range(steps):
        obs, _, _, _ = env.step(torch.zeros(env.num_envs, 1))
        seen.append(obs["actor"].clone())
    return torch.stack(seen)


def test_env_is_seeded_by_its_own_stream():
    before = torch.get_rng_state()
    env = mjlab_bench.make_env(3, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's global RNG is left alone
    first = _zero_steps(env, 3)
    torch.rand(100)  # what else draws from the global RNG does not change the episodes
    again = _zero_steps(mjlab_bench.make_env(3, seed=7), 3)
    other = _zero_steps(mjlab_bench.make_env(3, seed=8), 3)
    assert torch.equal(first, again)
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0, 0], first[0, 1])  # each env draws its own start
    obs = env.get_observations()
    assert obs["student"].shape == (3, 3) and obs["actor"].shape == (3, 5)  # the student sees no velocities
    assert isinstance(env.max_episode_length, int) and env.max_episode_length == 1000
    with pytest.raises(ValueError, match=r"num_envs=0 must be an integer >= 1"):
        mjlab_bench.make_env(0)


def test_reseed_replays_the_same_episodes():
    env = mjlab_bench.make_env(3, seed=7)
    first = _zero_steps(env, 3)
    env.step(torch.ones(3, 1))  # the stream moves on
    env.reseed()
    assert torch.equal(_zero_steps(env, 3), first)  # the same starts and steps again


def test_shipped_teacher_loads_and_swings_up():
    env = mjlab_bench.make_env(4, seed=0)
    cfg = mjlab_bench.train_cfg()
    assert cfg["obs_groups"] == {"student": ["student"], "teacher": ["actor"]}
    cfg.update(num_steps_per_env=8, max_iterations=2)
    cfg["algorithm"].update(gradient_length=8, mixing={"schedule": "two_stage", "phase1_iterations": 1})
    runner = MixingDistillationRunner(env, cfg, log_dir=None, device="cpu")
    runner.load(mjlab_bench.teacher_checkpoint())  # a PPO checkpoint: loads the teacher only (strict)
    runner.learn(2)
    assert runner.current_learning_iteration == 1 and runner.alg.teacher_loaded

    # one episode: the teacher drives envs 0 and 1, envs 2 and 3 get zero actions (the pole stays down)
    teacher_drives = torch.tensor([True, True, False, False])
    obs, _ = env.reset()
    returns = torch.zeros(4)
    ended = torch.zeros(4, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(env.max_episode_length + 1):
            action = torch.where(teacher_drives[:, None], runner.alg.teacher(obs), 0.0)
            obs, reward, dones, _ = env.step(action)
            returns += torch.where(ended, 0.0, reward)
            ended |= dones.bool()
            if ended.all():
                break
    assert ended.all()
    # the return is at most 50 (reward <= 1 per step, times the 0.05 s step); the shipped teacher earns 48.2 (its
    # JSON), zero actions 0.003, uniform random actions 8.6
    assert returns[2:].max() < 1.0, returns
    assert returns[:2].min() > 30.0, returns


def test_compare_schedules_runs_the_mjlab_task(tmp_path, monkeypatch):
    """``compare_schedules --task mjlab_cartpole_swingup`` distills and reports, normalised by random actions."""
    import json
    import math

    from dagmix.benchmarks import compare_schedules

    argv = ["--task", "mjlab_cartpole_swingup", "--schedules", "two_stage_third", "--seeds", "1"]
    argv += ["--iterations", "2", "--num-envs", "4", "--steps-per-env", "8", "--eval-interval", "5"]
    argv += ["--eval-episodes", "2", "--final-eval-episodes", "2", "--handover-offsets", "0"]
    argv += ["--env-overrides", "episode_length_s=2.5"]  # 50-step episodes: each evaluation is one episode
    learn_calls = []
    learn = MixingDistillationRunner.learn

    def spy(self, num_learning_iterations, init_at_random_ep_len=False):
        learn_calls.append(init_at_random_ep_len)
        return learn(self, num_learning_iterations, init_at_random_ep_len)

    monkeypatch.setattr(MixingDistillationRunner, "learn", spy)
    compare_schedules.main([*argv, "--workers", "1", "--out-dir", str(tmp_path)])
    # 1000-step episodes that end only by time-out: the training envs start out of step, as under mjlab's train
    # (in step, every env swings up in the same rollout and the student learned nothing: 0.09 normalised)
    assert learn_calls == [True]
    run = json.loads((tmp_path / "runs" / "two_stage_third" / "seed0.json").read_text())
    assert run["task"] == "mjlab_cartpole_swingup" and run["config"]["num_envs"] == 4
    assert run["config"]["env_overrides"] == ["episode_length_s=2.5"] and run["final"]["num_episodes"] == 2
    assert run["teacher_final"]["return_mean"] != run["random_final"]["return_mean"]
    assert math.isnan(run["final"]["success_rate"])  # the cartpole reports no success
    with pytest.raises(SystemExit):
        compare_schedules.parse_args(["--task", "mjlab_cartpole_swingup", "--env-overrides", "num_envs=3"])
    assert (tmp_path / "summary.md").read_text().startswith("Task: mjlab_cartpole_swingup.")


def test_compare_dagger_ppo_runs_the_mjlab_task_as_its_users_run_mixing_dagger_ppo(tmp_path, monkeypatch):
    """``compare_dagger_ppo --task mjlab_cartpole_swingup``: mjlab's DAggerPPO runner and config, out of step."""
    import json

    from dagmix.benchmarks import compare_dagger_ppo
    from dagmix.integrations.mjlab_tasks import MjlabMixingDAggerPPORunner

    argv = ["--task", "mjlab_cartpole_swingup", "--schedules", "advisor", "--seeds", "1", "--iterations", "2"]
    argv += ["--num-envs", "4", "--steps-per-env", "8", "--eval-interval", "5", "--eval-episodes", "2"]
    argv += ["--final-eval-episodes", "2", "--env-overrides", "episode_length_s=2.5", "--workers", "1"]
    learn_calls = []
    learn = MjlabMixingDAggerPPORunner.learn

    def spy(self, num_learning_iterations, init_at_random_ep_len=False):
        learn_calls.append((type(self), self.alg.__class__.__name__, init_at_random_ep_len))
        return learn(self, num_learning_iterations, init_at_random_ep_len)

    monkeypatch.setattr(MjlabMixingDAggerPPORunner, "learn", spy)
    compare_dagger_ppo.main([*argv, "--out-dir", str(tmp_path)])
    # the registered Mjlab-Cartpole-Swingup-Dagmix-DAggerPPO runner, its training episodes out of step
    assert learn_calls == [(MjlabMixingDAggerPPORunner, "MixingDAggerPPO", True)]
    run = json.loads((tmp_path / "runs" / "advisor" / "seed0.json").read_text())
    assert run["task"] == "mjlab_cartpole_swingup" and run["init_at_random_ep_len"] is True
    assert [r["iteration"] for r in run["iterations"]] == [0, 1] and run["final"]["num_episodes"] == 2
    # normalised by random actions on the same episodes, as the task's distillation rows
    assert run["teacher_final"]["return_mean"] != run["random_final"]["return_mean"]
    assert (tmp_path / "summary.md").read_text().startswith("Task: mjlab_cartpole_swingup.")
    for bad in (["--schedules", "handoff"], ["--student", "mlp"]):
        with pytest.raises(SystemExit):
            compare_dagger_ppo.parse_args(["--task", "mjlab_cartpole_swingup", *bad])
