"""The built-in quadcopter: shapes, devices, resets, goal ranges, rewards, hover, determinism, stability, errors."""

from __future__ import annotations

import math

import pytest
import torch

from dagmix.envs import QuadcopterEnv, QuadcopterEnvCfg, list_tasks, make
from dagmix.envs.quadcopter import GOAL, OMEGA, POS, QUAT, VEL, nominal_hover_action

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NO_DR = {"mass_range": (1.0, 1.0), "thrust_to_weight_range": (1.9, 1.9)}


def hover(env: QuadcopterEnv) -> torch.Tensor:
    a = torch.zeros(env.num_envs, 4, device=env.device)
    a[:, 0] = nominal_hover_action(env.cfg)
    return a


@pytest.mark.parametrize("device", DEVICES)
def test_shapes_dtypes_and_devices(device):
    env = make("quadcopter", num_envs=16, device=device, seed=0)
    obs, rew, dones, extras = env.step(torch.zeros(16, 4, device=device))
    assert obs["teacher"].shape == (16, 14) and obs["policy"].shape == (16, 16)  # with the velocity estimate
    for t in (obs["teacher"], obs["policy"], rew):
        assert t.device.type == device and t.dtype == torch.float32
    assert rew.shape == (16,) and dones.shape == (16,) and dones.dtype == torch.bool
    assert extras["time_outs"].shape == (16,)
    assert set(extras["log"]) == {"Episode/success_rate", "Episode/final_distance"}
    assert env.max_episode_length == 500 and env.num_actions == 4


def test_reset_on_termination_and_on_timeout():
    env = make("quadcopter", num_envs=4, seed=0, **NO_DR)
    env.state[POS.start + 2, 0] = 0.05  # below min_height
    env.state[POS.start + 2, 1] = 2.5  # above max_height
    _, _, dones, extras = env.step(hover(env))
    assert dones.tolist() == [True, True, False, False] and not extras["time_outs"].any()
    assert torch.allclose(env.state[POS][:, :2], torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5]]))
    assert env.episode_length_buf[:2].tolist() == [0, 0]
    env = make("quadcopter", num_envs=3, seed=0, **NO_DR)
    for k in range(1, 501):
        _, _, dones, extras = env.step(hover(env))
        if k < 500:
            assert not dones.any()
    assert dones.all() and extras["time_outs"].all() and (env.episode_length_buf == 0).all()


def test_goal_sampling_ranges():
    env = make("quadcopter", num_envs=4096, seed=1)
    goal = env.state[GOAL]
    assert goal[0:2].abs().max() <= 2.0 and goal[0:2].abs().max() > 1.9
    assert goal[2].min() >= 0.5 and goal[2].max() <= 1.5 and goal[2].max() - goal[2].min() > 0.9
    mass = env.state[16] / env.cfg.mass
    assert 0.8 <= mass.min() and mass.max() <= 1.2
    assert 1.7 <= env.state[17].min() and env.state[17].max() <= 2.1


def test_reward_terms_by_hand_hovering_and_falling():
    env = make("quadcopter", num_envs=2, seed=0, **NO_DR)
    dt = env.step_dt
    env.state[GOAL] = env.state[POS].clone()  # env 0 hovers exactly at its goal
    env.state[GOAL, 1] = env.state[POS, 1] + torch.tensor([0.0, 0.0, 0.3])
    env.state[VEL, 1] = torch.tensor([0.0, 0.0, -1.0])  # env 1 falls at 1 m/s, 0.3 m below its goal
    a = hover(env)
    _, rew, _, _ = env.step(a)
    # hovering at the goal: only the distance term, 15 * (1 - tanh(0)) * dt
    assert rew[0].item() == pytest.approx(15 * dt, abs=1e-6)
    # falling: velocity stays -1 (hover thrust cancels gravity), distance grows by 2 * 0.01 m in two substeps
    d = 0.3 + 2 * 0.01
    expected = (-0.05 * 1.0 + 15 * (1 - math.tanh(d / 0.8))) * dt
    assert rew[1].item() == pytest.approx(expected, rel=1e-4)


def test_hover_action_keeps_the_drone_still():
    env = make("quadcopter", num_envs=8, seed=0, **NO_DR)
    start = env.state[POS].clone()
    for _ in range(50):
        env.step(hover(env))
    assert (env.state[POS] - start).abs().max() < 1e-4 and env.state[VEL].abs().max() < 1e-4


def test_determinism_by_seed():
    def run(seed):
        env = make("quadcopter", num_envs=32, seed=seed)
        g = torch.Generator().manual_seed(5)
        out = []
        for _ in range(20):
            obs, rew, _, _ = env.step(torch.rand(32, 4, generator=g) * 2 - 1)
            out.append(torch.cat([obs["policy"], obs["teacher"], rew[:, None]], 1))
        return torch.stack(out)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_long_random_action_runs_stay_finite():
    env = make("quadcopter", num_envs=256, seed=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(3000):
        obs, rew, _, _ = env.step(torch.rand(256, 4, generator=g) * 8 - 4)  # beyond the bounds too
    assert torch.isfinite(env.state).all() and torch.isfinite(rew).all()
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(obs["teacher"]).all()
    assert env.state[OMEGA].abs().max() <= env.cfg.max_angular_speed
    assert torch.allclose(env.state[QUAT].square().sum(0), torch.ones(256), atol=1e-5)


def test_student_observation_has_no_parameters_and_no_linear_velocity_without_the_estimate():
    kw = {"gyro_noise": 0.0, "gravity_noise": 0.0, "position_noise": 0.0}
    env = make("quadcopter", num_envs=4, seed=0, velocity_noise=None, **kw)
    before = env.get_observations()
    env.state[VEL] += 1.0
    env.state[16] *= 1.1
    after = env.get_observations()
    assert torch.equal(before["policy"], after["policy"])
    assert not torch.equal(before["teacher"], after["teacher"])
    # the default student (velocity estimate, here exact) sees the velocity change but still not the mass
    env = make("quadcopter", num_envs=4, seed=0, velocity_noise=0.0, **kw)
    before = env.get_observations()
    env.state[16] *= 1.1
    assert torch.equal(before["policy"], env.get_observations()["policy"])
    env.state[VEL] += 1.0
    after = env.get_observations()
    assert torch.equal(before["policy"][:, :13], after["policy"][:, :13])
    assert not torch.equal(before["policy"][:, 13:], after["policy"][:, 13:])


@pytest.mark.parametrize("device", DEVICES)
def test_velocity_option_adds_the_noisy_body_velocity_and_keeps_the_rest(device):
    kw = {"gyro_noise": 0.0, "gravity_noise": 0.0, "position_noise": 0.0}
    base = make("quadcopter", num_envs=64, device=device, seed=3, velocity_noise=None, **kw)
    exact = make("quadcopter", num_envs=64, device=device, seed=3, velocity_noise=0.0, **kw)
    noisy = make("quadcopter", num_envs=64, device=device, seed=3, velocity_noise=0.5, **kw)
    for env in (base, exact, noisy):
        env.state[VEL] = torch.linspace(-1.0, 1.0, 3 * 64, device=device).view(3, 64)
    b, e, n = base.get_observations(), exact.get_observations(), noisy.get_observations()
    assert b["policy"].shape == (64, 13) and e["policy"].shape == (64, 16) and n["policy"].shape == (64, 16)
    assert e["policy"].device.type == device
    # the first 13 are the default's, the last 3 the teacher's body velocity (rows 0-2) plus the noise
    assert torch.equal(e["policy"][:, :13], b["policy"]) and torch.equal(e["policy"][:, 13:], e["teacher"][:, 0:3])
    err = n["policy"][:, 13:] - n["teacher"][:, 0:3]
    assert 0.4 < err.std().item() < 0.6 and abs(err.mean().item()) < 0.1
    assert torch.equal(b["teacher"], e["teacher"]) and torch.equal(b["teacher"], n["teacher"])
    for bad in (-0.1, True, "high"):
        with pytest.raises(ValueError, match="velocity_noise=.* must be None .* or a number >= 0"):
            QuadcopterEnvCfg(velocity_noise=bad)


def test_the_default_student_observes_velocity_with_noise_0_05_and_the_thrown_task_does_not():
    assert QuadcopterEnvCfg().velocity_noise == 0.05
    default = make("quadcopter", num_envs=4096, seed=1, gyro_noise=0.0, gravity_noise=0.0, position_noise=0.0)
    obs = default.get_observations()
    assert obs["policy"].shape == (4096, 16)
    err = obs["policy"][:, 13:] - obs["teacher"][:, 0:3]
    assert 0.045 < err.std().item() < 0.055
    thrown = make("quadcopter_thrown", num_envs=8, seed=1)
    assert thrown.cfg.velocity_noise is None and thrown.get_observations()["policy"].shape == (8, 13)
    assert make("quadcopter_thrown", num_envs=8, seed=1, velocity_noise=0.05).get_observations()["policy"].shape == (
        8,
        16,
    )


def test_episode_statistics_and_success_flags():
    env = make("quadcopter", num_envs=4, seed=0, **NO_DR)
    env.state[GOAL] = env.state[POS].clone()
    env.state[GOAL, 1] += 1.0  # env 1 is 1.73 m away
    env.state[POS.start + 2, 0:2] = 0.05  # both crash now: env 0 at its goal's xy (0.45 m below), env 1 away
    env.state[GOAL.start + 2, 0] = 0.05
    _, _, dones, extras = env.step(hover(env))
    assert dones[:2].all() and env.last_episode_success[0] and not env.last_episode_success[1]
    assert extras["log"]["Episode/success_rate"].item() == pytest.approx(0.5)


def test_make_errors():
    assert "quadcopter" in list_tasks()
    with pytest.raises(ValueError, match="Unknown task 'quadrotor'; known tasks: quadcopter"):
        make("quadrotor", num_envs=1)
    with pytest.raises(ValueError, match="thrust_to_wieght"):
        make("quadcopter", num_envs=1, thrust_to_wieght=2.0)
    with pytest.raises(ValueError, match="decimation=0"):
        QuadcopterEnvCfg(decimation=0)
    with pytest.raises(ValueError, match="mass_range"):
        QuadcopterEnvCfg(mass_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="num_envs=0"):
        QuadcopterEnv(0)


def test_ppo_runs_on_the_env():
    from rsl_rl.runners import OnPolicyRunner

    from dagmix.envs.task_configs import teacher_train_cfg

    cfg = teacher_train_cfg("quadcopter")
    cfg["num_steps_per_env"] = 4
    r = OnPolicyRunner(make("quadcopter", num_envs=32), cfg, None, "cpu")
    r.learn(2)
    assert r.current_learning_iteration == 1


def test_throughput_benchmark_smoke():
    from dagmix.benchmarks import env_throughput

    res = env_throughput.main(["--num-envs", "16", "--steps", "5", "--repeats", "1"])
    assert res[0]["num_envs"] == 16 and res[0]["median_steps_per_s"] > 0


@pytest.mark.parametrize("task", ["quadcopter", "quadcopter_thrown"])
def test_reset_draws_are_never_reused_and_episodes_outlast_the_draw_period(task):
    env = make(task, num_envs=1024, seed=4)
    assert 1 <= env.reset_draw_period < env.min_episode_steps
    g = torch.Generator().manual_seed(1)
    shortest = 10**9
    prev_goal = env.state[GOAL].clone()
    for _ in range(600):
        length_before = env.episode_length_buf.clone()
        _, _, dones, _ = env.step(torch.rand(1024, 4, generator=g) * 8 - 4)  # violent random actions
        if dones.any():
            shortest = min(shortest, int((length_before[dones] + 1).min()))
            new_goal = env.state[GOAL][:, dones]
            assert (new_goal != prev_goal[:, dones]).any(0).all()  # every reset got a fresh goal
        prev_goal = env.state[GOAL].clone()
    assert shortest > env.reset_draw_period


def test_thrown_start_draws_attitude_velocity_and_rates_within_their_ranges():
    from dagmix.envs.registry import THROWN_QUADCOPTER

    env = make("quadcopter_thrown", num_envs=4096, seed=0)
    c = env.cfg
    assert c.thrown and c.spawn_tilt == THROWN_QUADCOPTER["spawn_tilt"] and c.spawn_height == 1.0
    vel, omega, q = env.state[VEL], env.state[OMEGA], env.state[QUAT]
    assert vel.abs().max() <= c.spawn_lin_vel and vel.abs().max() > 0.9 * c.spawn_lin_vel
    assert omega.abs().max() <= c.spawn_ang_vel and omega.abs().max() > 0.9 * c.spawn_ang_vel
    assert torch.allclose(q.square().sum(0), torch.ones(4096), atol=1e-5) and (q[3] == 0).all()  # no yaw
    tilt = 2 * torch.acos(q[0].clamp(max=1.0))
    assert tilt.max() <= c.spawn_tilt + 1e-4 and tilt.max() > 0.9 * c.spawn_tilt
    assert abs(float(vel.mean())) < 0.1 and 0.3 < float(tilt.mean()) / c.spawn_tilt < 0.7  # uniform, centred
    # every reset draws a new thrown state, and the same seed gives the same one
    again = make("quadcopter_thrown", num_envs=4096, seed=0)
    assert torch.equal(again.state, env.state)
    _, _, dones, _ = env.step(torch.zeros(4096, 4))
    for _ in range(40):
        before = env.state[VEL].clone()
        _, _, dones, _ = env.step(torch.zeros(4096, 4))
        if dones.any():
            assert not torch.equal(env.state[VEL][:, dones], before[:, dones])
            assert (env.state[VEL][:, dones].abs() <= c.spawn_lin_vel).all()


def test_thrown_start_ends_untrained_episodes_at_once_and_level_start_is_unchanged():
    def mean_first_episode(env):
        n = env.num_envs
        length, ended = torch.zeros(n), torch.zeros(n, dtype=torch.bool)
        for _ in range(env.max_episode_length):
            _, _, dones, _ = env.step(torch.zeros(n, 4))
            length += (~ended).float()
            ended |= dones.bool()
        return float(length.mean())

    thrown = mean_first_episode(make("quadcopter_thrown", num_envs=512, seed=0))
    level = mean_first_episode(make("quadcopter", num_envs=512, seed=0))
    assert thrown < 50 < level  # of 500 steps: zero actions crash a thrown quadcopter within a second
    # the level start draws exactly what it drew before the thrown start existed: goal, mass, thrust-to-weight only
    env = make("quadcopter", num_envs=8, seed=3)
    assert env._uniform.shape == (5, 8)
    assert (env.state[3:6] == 0).all() and (env.state[10:13] == 0).all() and (env.state[6] == 1).all()
    with pytest.raises(ValueError, match="spawn_tilt=-0.1 must be >= 0"):
        make("quadcopter", num_envs=1, spawn_tilt=-0.1)


def test_the_blind_quadcopter_is_the_quadcopter_without_the_velocity_estimate():
    from dagmix.envs.task_configs import distill_train_cfg, shipped_teacher, task_student_model

    blind = make("quadcopter_blind", num_envs=64, seed=5)
    plain = make("quadcopter", num_envs=64, seed=5, velocity_noise=None)
    assert blind.cfg == plain.cfg and blind.cfg.velocity_noise is None
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.rand(64, 4, generator=g) * 2 - 1
        ob, rb, db, eb = blind.step(a)
        op, rp, dp, ep = plain.step(a)
        assert torch.equal(ob["policy"], op["policy"]) and torch.equal(ob["teacher"], op["teacher"])
        assert torch.equal(rb, rp) and torch.equal(db, dp)
    assert ob["policy"].shape == (64, 13)
    assert make("quadcopter_blind", num_envs=2, velocity_noise=0.05).get_observations()["policy"].shape == (2, 16)
    # the quadcopter's teacher (same teacher observations); the student of the blind results: GRU 128, EMA 0.9
    assert shipped_teacher("quadcopter_blind") == shipped_teacher("quadcopter")
    cfg = distill_train_cfg("quadcopter_blind")
    assert cfg["student"]["rnn_hidden_dim"] == 128 and cfg["algorithm"]["ema_decay"] == 0.9
    assert cfg["student"] == task_student_model("quadcopter_blind")
