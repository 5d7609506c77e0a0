"""The cue_doors task: observation groups, the cue latch, door endings and rewards, time-outs, seeds, the teacher."""

from __future__ import annotations

import copy

import pytest
import torch

from dagmix.envs import CueDoorsEnv, CueDoorsEnvCfg, list_tasks, make

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def toward(env: CueDoorsEnv, target: tuple[float, float]) -> torch.Tensor:
    """Actions (num_envs, 2) that head every env straight at ``target`` at full speed."""
    d = torch.tensor(target, device=env.device) - env.pos
    return d / d.abs().amax(-1, keepdim=True).clamp(min=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_shapes_dtypes_and_devices(device):
    env = make("cue_doors", num_envs=16, device=device, seed=0)
    obs, rew, dones, extras = env.step(torch.zeros(16, 2, device=device))
    assert obs["teacher"].shape == (16, 3) and obs["policy"].shape == (16, 5) and obs["critic"].shape == (16, 4)
    for t in (obs["teacher"], obs["policy"], obs["critic"], rew):
        assert t.device.type == device and t.dtype == torch.float32
    assert rew.shape == (16,) and dones.shape == (16,) and dones.dtype == torch.bool
    assert extras["time_outs"].shape == (16,) and extras["time_outs"].dtype == torch.bool
    logged = {"Episode/success_rate", "Episode/final_distance", "Episode/wrong_door_rate", "Episode/cue_rate"}
    assert set(extras["log"]) == logged and all(v.dim() == 0 for v in extras["log"].values())
    assert env.num_actions == 2 and env.max_episode_length == 60 and "cue_doors" in list_tasks()
    side = env.goal_side
    assert set(side.tolist()) <= {-1.0, 1.0}
    assert torch.equal(obs["teacher"][:, 2], side) and torch.equal(obs["critic"][:, :3], obs["teacher"])


def test_start_positions_and_goal_sides_are_drawn_in_their_ranges():
    env = make("cue_doors", num_envs=4096, seed=1)
    assert env.pos.abs().max() <= env.cfg.start_noise and env.pos.abs().max() > 0.9 * env.cfg.start_noise
    assert 0.45 < float((env.goal_side > 0).float().mean()) < 0.55
    assert not env.cue_seen.any()  # the start is away from the cue


def test_the_cue_latches_the_goal_side_and_is_cleared_at_reset():
    env = make("cue_doors", num_envs=64, seed=0)
    side = env.goal_side.clone()
    obs = env.get_observations()
    assert (obs["policy"][:, 4] == 0).all() and (obs["critic"][:, 3] == 0).all()
    cue = (env.cfg.cue_x, env.cfg.cue_y)
    seen_at = torch.full((64,), -1)
    for k in range(4):  # straight at the cue: inside its disc after 1 or 2 steps
        obs, _, dones, _ = env.step(toward(env, cue))
        assert not dones.any()
        latched = obs["policy"][:, 4]
        assert torch.equal(latched[env.cue_seen], side[env.cue_seen]) and (latched[~env.cue_seen] == 0).all()
        seen_at = torch.where((seen_at < 0) & env.cue_seen, k, seen_at)
    assert env.cue_seen.all() and seen_at.max() <= 2
    for _ in range(3):  # away from the cue: the cue stays latched
        obs, _, _, _ = env.step(toward(env, (0.0, 0.3)))
    assert torch.equal(obs["policy"][:, 4], side) and torch.equal(obs["critic"][:, 3], side)
    env.pos[:2] = 5.0  # envs 0 and 1 leave the box: reset, cue cleared there only
    obs, rew, dones, _ = env.step(torch.zeros(64, 2))
    assert dones.tolist()[:3] == [True, True, False] and rew[:2].tolist() == pytest.approx([-1.01, -1.01])
    assert not env.cue_seen[:2].any() and env.cue_seen[2:].all()
    assert (obs["policy"][:2, 2:] == 0).all()  # fresh episode: no last action, no cue
    assert (env.episode_length_buf[:2] == 0).all() and (env.episode_length_buf[2:] == 8).all()


def test_correct_and_wrong_doors_end_the_episode_with_their_rewards():
    env = make("cue_doors", num_envs=2, seed=0)
    env.goal_side[:] = torch.tensor([1.0, -1.0])
    c = env.cfg
    steps, total = 0, torch.zeros(2)
    for _ in range(10):  # both head for the right-hand door: env 0's goal, env 1's wrong door
        _, rew, dones, extras = env.step(toward(env, (c.door_x, c.door_y)))
        steps += 1
        total += rew
        if dones.any():
            break
    assert dones.all() and not extras["time_outs"].any() and 2 <= steps <= 5
    assert env.last_episode_success.tolist() == [True, False]
    assert rew.tolist() == pytest.approx([c.success_reward + c.step_reward, c.wrong_door_reward + c.step_reward])
    assert total[0].item() == pytest.approx(1.0 - 0.01 * steps)
    assert env.last_episode_final_distance[0] <= c.door_radius and env.last_episode_final_distance[1] > 1.0
    assert extras["log"]["Episode/success_rate"].item() == pytest.approx(0.5)
    assert extras["log"]["Episode/wrong_door_rate"].item() == pytest.approx(0.5)


def test_time_out_after_max_episode_length_and_clamped_actions():
    env = make("cue_doors", num_envs=3, seed=2, max_episode_length=7)
    start = env.pos.clone()
    for k in range(1, 8):
        still = torch.zeros(3, 2)
        still[0, 0] = 50.0 if k == 1 else 0.0  # clamped to 1: moves 0.2 once
        _, rew, dones, extras = env.step(still)
        if k == 1:
            assert env.pos[0, 0].item() == pytest.approx(start[0, 0].item() + 0.2)
            assert env.last_action[0].tolist() == [1.0, 0.0]
        if k < 7:
            assert not dones.any() and rew.tolist() == pytest.approx([-0.01] * 3)
    assert dones.all() and extras["time_outs"].all() and (env.episode_length_buf == 0).all()
    assert not env.last_episode_success.any()


def test_determinism_by_seed():
    def rollout(seed):
        env = make("cue_doors", num_envs=128, seed=seed)
        g = torch.Generator().manual_seed(0)
        out = []
        for _ in range(80):
            obs, rew, dones, _ = env.step(torch.randn(128, 2, generator=g) * 2)
            out.append(torch.cat([obs["policy"], obs["teacher"], rew[:, None], dones[:, None].float()], -1))
        return torch.stack(out)

    a, b = rollout(3), rollout(3)
    assert torch.equal(a, b) and not torch.equal(a, rollout(4))


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="door_radius"):
        CueDoorsEnvCfg(door_x=0.1, door_radius=0.2)
    with pytest.raises(ValueError, match="max_episode_length=0"):
        CueDoorsEnvCfg(max_episode_length=0)
    with pytest.raises(ValueError, match="Unknown cue_doors config key"):
        make("cue_doors", num_envs=1, door_with=1.0)
    with pytest.raises(ValueError, match="env.max_speed"):
        make("cue_doors", num_envs=1, max_speed="fast")


def shipped_teacher_and_env() -> tuple[CueDoorsEnv, torch.nn.Module]:
    """The shipped teacher (its PPO actor, as the distillation's teacher) and a 500-env cue_doors."""
    from rsl_rl.utils import resolve_callable

    from dagmix.envs.task_configs import TEACHER_MODEL, shipped_teacher

    env = make("cue_doors", num_envs=500, seed=123)
    model_cfg = copy.deepcopy(TEACHER_MODEL)
    cls = resolve_callable(model_cfg.pop("class_name"))
    teacher = cls(env.get_observations(), {"teacher": ["teacher"]}, "teacher", 2, **model_cfg)
    teacher.load_state_dict(torch.load(shipped_teacher("cue_doors"), weights_only=True)["actor_state_dict"])
    return env, teacher.eval()


def test_shipped_teacher_loads_and_reaches_the_goal_door_without_the_cue():
    from dagmix.envs.evaluation import evaluate_policy

    env, teacher = shipped_teacher_and_env()
    res = evaluate_policy(env, teacher, 500)
    assert res.success_rate >= 0.99 and res.return_mean > 0.9
    obs, done, cue = env.reset(), torch.zeros(500, dtype=torch.bool), torch.zeros(500, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(10):
            obs, _, dones, _ = env.step(teacher(obs))
            cue |= env.cue_seen & ~done  # a fresh episode starts outside the cue
            done |= dones
    assert done.all() and not cue.any()  # it never fetches the cue: its labels say nothing about it


def test_the_teachers_average_label_leads_nowhere():
    """Without the cue, the best imitation of the teacher averages its two labels: up between the doors."""
    env, teacher = shipped_teacher_and_env()
    obs = env.get_observations()
    with torch.no_grad():
        flipped = obs.clone()
        flipped["teacher"][:, 2] *= -1
        mean_label = (teacher(obs).clamp(-1, 1) + teacher(flipped).clamp(-1, 1)) / 2
    assert mean_label[:, 0].abs().mean() < 0.2 and mean_label[:, 1].mean() > 0.5


def test_task_configs():
    from dagmix.envs.task_configs import dagger_ppo_train_cfg, distill_train_cfg, teacher_train_cfg

    assert teacher_train_cfg("cue_doors")["obs_groups"] == {"actor": ["teacher"], "critic": ["teacher"]}
    d = distill_train_cfg("cue_doors")
    assert d["student"]["class_name"] == "MLPModel" and not any(k.startswith("rnn") for k in d["student"])
    assert d["algorithm"]["mixing"]["phase1_iterations"] < d["max_iterations"]
    p = dagger_ppo_train_cfg("cue_doors")
    assert p["actor"] | {"distribution_cfg": d["student"]["distribution_cfg"]} == d["student"]  # --init_student
    assert p["actor"]["distribution_cfg"]["init_std"] == 1.0 and p["algorithm"]["entropy_coef"] == 0.01  # exploring
    assert p["obs_groups"] == {"actor": ["policy"], "critic": ["critic"], "teacher": ["teacher"]}


def test_ppo_and_distillation_run_on_the_env(tmp_path):
    from rsl_rl.runners import DistillationRunner, OnPolicyRunner

    from dagmix.envs.task_configs import distill_train_cfg, shipped_teacher, teacher_train_cfg

    cfg = teacher_train_cfg("cue_doors")
    cfg["num_steps_per_env"] = 4
    r = OnPolicyRunner(make("cue_doors", num_envs=32), cfg, None, "cpu")
    r.learn(2)
    cfg = distill_train_cfg("cue_doors")
    cfg["num_steps_per_env"] = 12  # a multiple of gradient_length
    r = DistillationRunner(make("cue_doors", num_envs=32), cfg, None, "cpu")
    r.load(shipped_teacher("cue_doors"))
    r.learn(2)
    assert r.current_learning_iteration == 1


def test_compare_schedules_runs_on_cue_doors_and_quadcopter_blind_keeps_the_plain_ratio(tmp_path):
    import json

    from dagmix.benchmarks import compare_schedules
    from dagmix.benchmarks.tasks import get_task

    argv = [
        *("--task", "cue_doors", "--schedules", "two_stage_third", "--seeds", "1", "--iterations", "2"),
        *("--num-envs", "8", "--steps-per-env", "12", "--eval-interval", "1", "--eval-episodes", "4"),
        *("--final-eval-episodes", "6", "--workers", "1", "--out-dir", str(tmp_path)),
    ]
    compare_schedules.main(argv)
    run = json.loads((tmp_path / "runs" / "two_stage_third" / "seed0.json").read_text())
    assert run["task"] == "cue_doors" and run["final"]["num_episodes"] == 6
    assert run["teacher_final"]["success_rate"] == 1.0 and "random_final" in run
    args = compare_schedules.parse_args(["--task", "cue_doors"])
    assert (args.iterations, args.num_envs, args.eval_interval) == (100, 1024, 10)
    blind = get_task("quadcopter_blind")
    assert blind.random_action_scale is None and blind.train_cfg("gru")["student"]["rnn_hidden_dim"] == 128
