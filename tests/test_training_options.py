"""Who-drove-aware loss weighting and bounded aggregation replay."""

from __future__ import annotations

import pytest
import torch
from helpers import make_runner, rollout

from dagmix.algorithms import compat
from dagmix.algorithms.loss_weighting import SplitLoss
from dagmix.mixing.options import LossWeighting, ReplayConfig


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _changed(before, model):
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ------------------------------------------------------------------------------------------ weighting
def test_split_loss_weights_reduce_to_the_mean_over_the_weighted_samples():
    fn = SplitLoss(torch.nn.functional.mse_loss, "cpu")
    pred, target = torch.randn(6, 3), torch.randn(6, 3)
    mask = torch.tensor([[True, True, False, False, False, True]])
    fn.begin(mask, torch.ones(1, 6))
    assert torch.allclose(fn(pred, target), torch.nn.functional.mse_loss(pred, target))
    fn.begin(mask, (~mask).float())  # student-driven samples only
    on_s = ~mask[0]
    assert torch.allclose(fn(pred, target), torch.nn.functional.mse_loss(pred[on_s], target[on_s]))
    fn.begin(mask, torch.where(mask, 1.0, 3.0))
    per = (pred - target).square().mean(-1)
    w = torch.where(mask[0], 1.0, 3.0)
    assert torch.allclose(fn(pred, target), (w * per).sum() / w.sum())


def test_zero_weight_on_teacher_driven_samples_leaves_the_student_untouched(tmp_path, teacher_path):
    alg_cfg = {"mixing": {"schedule": "teacher_only"}, "loss_weighting": {"teacher_driven": 0.0}}
    r = make_runner(tmp_path, teacher_path, alg_cfg)
    student = r.alg.policy.student if compat.STUDENT_TEACHER_POLICY else r.alg.student  # 3.x: StudentTeacher
    before = _params(student)
    r.learn(1)
    assert not _changed(before, student)  # every sample was teacher-driven and weighted 0
    plain = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "teacher_only"}})
    student = plain.alg.policy.student if compat.STUDENT_TEACHER_POLICY else plain.alg.student
    before = _params(student)
    plain.learn(1)
    assert _changed(before, student)


def test_drop_teacher_driven_after_takes_effect_at_that_iteration(tmp_path, teacher_path):
    alg_cfg = {"mixing": {"schedule": "teacher_only"}, "loss_weighting": {"drop_teacher_driven_after": 2}}
    r = make_runner(tmp_path, teacher_path, alg_cfg)
    losses, update = [], r.alg.update

    def recording_update():
        out = update()
        losses.append(out["behavior"])
        return out

    r.alg.update = recording_update
    r.learn(3)
    # every sample is teacher-driven: from iteration 2 on, all weigh 0 (the optimizer's momentum still moves it)
    assert losses[0] > 0 and losses[1] > 0 and losses[2] == 0.0


def test_failed_episode_weights_only_transitions_of_episodes_that_ended_by_termination(tmp_path, teacher_path):
    alg_cfg = {"mixing": {"schedule": "student_only"}, "loss_weighting": {"failed_episode": 0.25}}
    r = make_runner(tmp_path, teacher_path, alg_cfg, num_envs=3)
    alg = r.alg
    steps = alg.teacher_masks.shape[0]  # 8
    dones = torch.zeros(steps, 3, dtype=torch.bool)
    time_outs = torch.zeros(steps, 3, dtype=torch.bool)
    dones[2, 0] = True  # env 0: an episode terminated (crash) at step 2, the next one runs on past the rollout
    dones[4, 1] = time_outs[4, 1] = True  # env 1: a time-out at step 4, then a crash at step 6
    dones[6, 1] = True
    alg.storage.dones.copy_(dones.view(steps, 3, 1).long())
    alg.loss_weights.time_outs.copy_(time_outs)
    alg.teacher_masks.zero_()
    w = alg.loss_weights.weights(alg.teacher_masks, alg.storage.dones, alg.iteration, steps)
    expected = torch.ones(steps, 3)
    expected[:3, 0] = 0.25  # env 0, steps 0-2: the crashed episode; steps 3-7: outcome unknown -> 1
    expected[5:7, 1] = 0.25  # env 1, steps 5-6: the crashed episode; 0-4 timed out; 7 unknown
    assert torch.equal(w, expected)


def test_failed_episode_weighting_needs_time_outs(tmp_path, teacher_path):
    alg_cfg = {"loss_weighting": {"failed_episode": 0.5}}
    r = make_runner(tmp_path, teacher_path, alg_cfg)
    obs = r.env.get_observations()
    r.alg.act(obs)
    obs, rew, dones, extras = r.env.step(torch.zeros(r.env.num_envs, 2))
    extras.pop("time_outs")
    with pytest.raises(ValueError, match="time_outs"):
        r.alg.process_env_step(obs, rew, dones, extras)


@pytest.mark.parametrize(
    ("section", "cfg", "match"),
    [
        ("loss_weighting", {"student_drivn": 2.0}, "Did you mean 'student_driven'"),
        ("loss_weighting", {"teacher_driven": -1.0}, "teacher_driven=-1.0"),
        ("loss_weighting", {"teacher_driven": 0, "student_driven": 0}, "both 0"),
        ("loss_weighting", {"drop_teacher_driven_after": 1.5}, "drop_teacher_driven_after=1.5"),
        ("replay", {"iterations": -1}, "replay.iterations=-1"),
        ("replay", {"iterations": 2, "ratio": 0}, "replay.ratio=0"),
        ("replay", {"iteration": 2}, "Did you mean 'iterations'"),
    ],
)
def test_option_validation(tmp_path, teacher_path, section, cfg, match):
    with pytest.raises(ValueError, match=match):
        make_runner(tmp_path, teacher_path, {section: cfg})


def test_options_are_off_by_default():
    assert not LossWeighting().active and not ReplayConfig().active


# ------------------------------------------------------------------------------------------ replay
NEEDS_MODELS = pytest.mark.skipif(
    compat.STUDENT_TEACHER_POLICY, reason="rsl-rl-lib 3.x: replay needs separate student and teacher models"
)


def test_replay_is_refused_on_rsl_rl_3(tmp_path):
    if not compat.STUDENT_TEACHER_POLICY:
        pytest.skip("rsl-rl-lib >= 4 supports replay")
    with pytest.raises(ValueError, match=r"replay needs rsl-rl-lib >= 4"):
        make_runner(tmp_path, None, {"replay": {"iterations": 2}})


@NEEDS_MODELS
@pytest.mark.parametrize("student", ["gru", "lstm"])
def test_recurrent_replay_records_the_hidden_state_each_step_started_from(tmp_path, teacher_path, student):
    r = make_runner(tmp_path, teacher_path, {"replay": {"iterations": 2}}, student=student)
    alg, replay = r.alg, r.alg.replay
    assert replay.recurrent and len(replay.hidden) == (2 if student == "lstm" else 1)
    alg.train_mode()
    had = []
    obs = r.env.get_observations()
    with torch.inference_mode():
        for _ in range(8):
            h = alg.student.get_hidden_state()  # None before the first step: recorded as zeros
            parts = h if isinstance(h, tuple) else (h,) * len(replay.hidden)
            had.append([torch.zeros(1, 16, 16) if p is None else p.clone() for p in parts])
            obs, rew, dones, extras = r.env.step(alg.act(obs))
            alg.process_env_step(obs, rew, dones, extras)
    stored_obs, stored_dones = alg.storage.observations["policy"].clone(), alg.storage.dones.clone()
    alg.update()
    assert replay.filled == 1
    for i, ring in enumerate(replay.hidden):  # (rollout * steps, layers, num_envs, size)
        assert torch.equal(ring[:8], torch.stack([h[i] for h in had]))
    assert torch.equal(replay.obs["policy"][:128], stored_obs.flatten(0, 1))
    assert torch.equal(replay.dones[:128], stored_dones.view(-1).bool())


@NEEDS_MODELS
def test_recurrent_replay_chunks_start_from_the_stored_hidden_state_and_reset_at_dones(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"replay": {"iterations": 3}, "gradient_length": 4}, student="gru")
    alg, replay = r.alg, r.alg.replay
    alg.eval_mode()  # no normalizer updates: the student computes the same function on every step
    for _ in range(2):
        rollout(alg, r.env, 8)
        replay.add(alg.storage.observations, alg.storage.privileged_actions, alg.storage.dones)
        assert alg.storage.dones.any()  # episodes of 5 steps end within each rollout
        alg.storage.clear()
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    obs, labels, dones, hidden, first = replay.sample_sequences(64, 4, gen)
    assert obs.batch_size == torch.Size([4, 64]) and labels.shape == (4, 64, 2) and dones.shape == (4, 64)
    assert hidden.shape == (1, 64, 16)
    assert dones[:3].any()  # some chunks cross an episode end
    row, env = first // 16, first % 16  # first = (rollout * 8 + step) * 16 + env
    assert bool((row % 8 <= 4).all()) and bool((row < 16).all())  # chunks stay within one stored rollout
    assert torch.equal(hidden, replay.hidden[0][row, :, env].transpose(0, 1))
    assert torch.equal(labels, replay.labels[first.unsqueeze(0) + 16 * torch.arange(4).unsqueeze(1)])
    # the weights did not change since the rollouts: running a chunk from its stored hidden state, resetting at
    # dones, reproduces the hidden state recorded at every later step of the chunk
    mse = torch.nn.functional.mse_loss
    with torch.no_grad():
        alg.student.reset(hidden_state=hidden)
        manual = 0.0
        for k in range(4):
            manual += mse(alg.student(obs[k]), labels[k]).item()
            alg.student.reset(dones[k])
            if k < 3:
                h = replay.hidden[0][row + k + 1, :, env].transpose(0, 1)
                assert torch.allclose(alg.student.get_hidden_state(), h, atol=1e-6)
    # sequence_loss does the same, from exactly the sampled hidden state
    passed, reset = [], alg.student.reset

    def recording_reset(dones=None, hidden_state=None):
        if hidden_state is not None:
            passed.append(hidden_state.clone())
        reset(dones, hidden_state)

    alg.student.reset = recording_reset
    gen.set_state(state)
    loss, per_step = replay.sequence_loss(alg.student, mse, 64, 4, gen)
    assert len(passed) == 1 and torch.equal(passed[0], hidden)
    assert loss.requires_grad and loss.item() == pytest.approx(manual, rel=1e-5)
    assert per_step.item() == pytest.approx(manual / 4, rel=1e-5)


@NEEDS_MODELS
def test_recurrent_student_trains_with_replay_and_logs_the_replay_loss(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"replay": {"iterations": 2, "ratio": 1.0}}, student="gru")
    alg, seen = r.alg, []
    alg.iteration_callbacks.append(lambda it, m: seen.append(m))
    steps_taken = []
    alg.optimizer.register_step_post_hook(lambda *_: steps_taken.append(1))
    before = _params(alg.student)
    r.learn(3)
    assert _changed(before, alg.student)
    assert "Distillation/replay_loss" not in seen[0]  # nothing stored before the first update
    assert all(m["Distillation/replay_loss"] > 0 for m in seen[1:])
    assert len(steps_taken) == 3 + 2  # one on-policy step per update, one replay step from the second on
    assert alg.student.get_hidden_state().shape == (1, 16, 16)  # the rollout's hidden state is restored


@NEEDS_MODELS
def test_replay_memory_bound_is_enforced_and_reported(tmp_path, teacher_path, capsys):
    with pytest.raises(ValueError, match=r"replay needs 0\.00 GiB .*above replay.max_memory_gb=1e-09"):
        make_runner(tmp_path, teacher_path, {"replay": {"iterations": 3, "max_memory_gb": 1e-9}})
    with pytest.raises(ValueError, match="GiB is free"):
        make_runner(tmp_path, teacher_path, {"replay": {"iterations": 10**9}})
    r = make_runner(tmp_path, teacher_path, {"replay": {"iterations": 3}})
    # 3 rollouts x 8 steps x 16 envs x (4 obs + 2 action floats) x 4 bytes
    assert r.alg.replay.bytes == 3 * 8 * 16 * 6 * 4
    assert "aggregation replay: last 3 rollouts (384 samples)" in capsys.readouterr().out
    gru = make_runner(tmp_path, teacher_path, {"replay": {"iterations": 3}}, student="gru")
    # + dones (1 byte) and the GRU's hidden state (16 floats) per sample
    assert gru.alg.replay.bytes == 3 * 8 * 16 * (6 * 4 + 1 + 16 * 4)
    assert "(384 samples, sequences with the recorded hidden state)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"replay needs 0\.00 GiB .*above replay.max_memory_gb=1e-09"):
        make_runner(tmp_path, teacher_path, {"replay": {"iterations": 3, "max_memory_gb": 1e-9}}, student="gru")


@NEEDS_MODELS
def test_replay_keeps_the_last_rollouts_and_adds_gradient_steps(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"replay": {"iterations": 2, "ratio": 1.0}})
    alg, seen = r.alg, []
    alg.iteration_callbacks.append(lambda it, m: seen.append(m))
    steps_taken = []
    step = alg.optimizer.step

    def counting_step(*a, **k):
        steps_taken.append(1)
        return step(*a, **k)

    alg.optimizer.step = counting_step
    rollout(alg, r.env, 8)
    labels = alg.storage.privileged_actions.clone()
    alg.update()
    assert alg.replay.filled == 1 and "Distillation/replay_loss" not in seen[0]  # nothing to replay yet
    assert torch.equal(alg.replay.labels[: 8 * 16], labels.flatten(0, 1))
    assert len(steps_taken) == 1  # gradient_length 8 of 8 steps: one on-policy step
    for _ in range(2):
        rollout(alg, r.env, 8)
        alg.update()
    assert alg.replay.filled == 2 and alg.replay.next_slot == 1  # a ring of 2: the oldest was overwritten
    assert "Distillation/replay_loss" in seen[-1] and seen[-1]["Distillation/replay_loss"] > 0
    assert len(steps_taken) == 1 + 2 * 2  # ratio 1: one replay step per on-policy step
