"""MixingDistillation under rsl_rl's runners: mixing, records, phases, console lines, logging, resume."""

from __future__ import annotations

import glob
import re
import shutil

import pytest
import torch
from helpers import make_runner, rollout

from dagmix.algorithms import CHECKPOINT_KEY, MixingDistillation, MixingDistillationRunner, compat

# rsl_rl's stock DistillationRunner can build MixingDistillation from a "pkg.mod:Cls" class_name from 3.3 on
# (3.0.1 uses eval); only the 4.x/5.x runners save, load and start learn() through the algorithm, so on 3.x
# resuming the schedule needs MixingDistillationRunner.
RUNNERS = ["mixing", "stock"] if compat.RESOLVES_CLASS_PATHS else ["mixing"]
RESUME_RUNNERS = RUNNERS if not compat.STUDENT_TEACHER_POLICY else ["mixing"]
BAR = "=" * 80


@pytest.mark.parametrize("student", ["mlp", "gru", "lstm"])
@pytest.mark.parametrize("granularity", ["step", "episode", "iteration"])
def test_executed_action_follows_mask_and_all_records_are_stored(tmp_path, teacher_path, student, granularity):
    r = make_runner(
        tmp_path,
        teacher_path,
        {"mixing": {"schedule": "constant", "beta": 0.5, "granularity": granularity}},
        student=student,
        num_envs=64,
    )
    alg: MixingDistillation = r.alg
    alg.train_mode()
    rollout(alg, r.env, 8)
    mask = alg.teacher_masks  # (T, N)
    executed, student_a, teacher_a = alg.executed_actions, alg.storage.actions, alg.storage.privileged_actions
    assert mask.shape == (8, 64) and mask.dtype == torch.bool
    assert executed.shape == student_a.shape == teacher_a.shape == (8, 64, 2)
    m = mask.unsqueeze(-1).expand_as(executed)
    assert torch.equal(executed[m], teacher_a[m])
    assert torch.equal(executed[~m], student_a[~m])
    assert 0 < mask.sum() < mask.numel()  # both drove (P(fail) < 2 * 0.5**64 per row)
    assert not torch.equal(student_a, teacher_a)  # the student's sampled action is its own
    if granularity == "iteration":
        assert (mask == mask[0]).all()


def test_episode_granularity_keeps_draws_until_done(tmp_path, teacher_path):
    r = make_runner(
        tmp_path,
        teacher_path,
        {"mixing": {"schedule": "constant", "beta": 0.5, "granularity": "episode"}},
        num_envs=256,
    )
    alg = r.alg
    alg.train_mode()
    dones_seen = []
    obs = r.env.get_observations()
    with torch.inference_mode():
        for _ in range(8):
            obs, rew, dones, extras = r.env.step(alg.act(obs))
            alg.process_env_step(obs, rew, dones, extras)
            dones_seen.append(dones.bool())
    mask = alg.teacher_masks
    changed_any = False
    for t in range(1, 8):
        kept = ~dones_seen[t - 1]
        assert torch.equal(mask[t][kept], mask[t - 1][kept])
        changed_any |= bool((mask[t] != mask[t - 1]).any())
    assert changed_any  # episodes of length 5 end within the rollout and get fresh draws


@pytest.mark.parametrize("runner", RUNNERS)
def test_two_stage_switches_at_exact_iteration_with_seed_console_lines(tmp_path, teacher_path, capsys, runner):
    r = make_runner(tmp_path, teacher_path, {"use_two_stage_training": True, "phase1_iterations": 3}, runner=runner)
    r.learn(6)
    out = capsys.readouterr().out
    assert out.count("Training Phase: Phase 1 (teacher actions)") == 3
    assert out.count("Training Phase: Phase 2 (student actions)") == 3
    for k in (1, 2, 3):
        assert f"Phase Iteration: {k}/3 (Phase 1)\n" in out
    assert "Phase Iteration: 4/3" not in out
    switching = "  SWITCHING TO PHASE 2: Now using STUDENT actions to update environment"
    banner = f"{BAR}\n{BAR}\n{switching}\n  Iteration: 3\n{BAR}\n{BAR}\n"
    assert out.count(banner) == 1
    # The banner comes after iteration 2's last phase-1 line and before the first phase-2 line.
    assert out.index("Phase Iteration: 3/3 (Phase 1)") < out.index(banner) < out.index("Phase 2 (student actions)")
    info = r.alg.get_training_phase_info()
    assert info["training_phase"] == 2 and info["current_iteration"] == 6 and info["phase1_iterations"] == 3


def test_mixed_line_and_no_banner_for_student_only(tmp_path, teacher_path, capsys):
    r = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "constant", "beta": 0.42}})
    r.learn(1)
    r2 = make_runner(tmp_path, teacher_path, None)
    r2.learn(2)
    out = capsys.readouterr().out
    assert "Training Phase: Mixed (beta=0.42)" in out
    assert "SWITCHING TO PHASE 2" not in out


@pytest.mark.parametrize("runner", RUNNERS)
def test_scalars_reach_the_writer(tmp_path, teacher_path, runner):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = make_runner(
        tmp_path, teacher_path, {"mixing": {"schedule": "step", "phase1_iterations": 2}}, runner=runner, log=True
    )
    r.learn(4)
    getattr(r, "logger", r).writer.flush()  # rsl-rl 3.0.1 keeps the writer on the runner
    acc = EventAccumulator(glob.glob(str(tmp_path / "logs"))[0])
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {
        "Distillation/training_phase",
        "Distillation/current_iteration",
        "Distillation/beta",
        "Distillation/teacher_fraction",
        "Loss/behavior",
        "Distillation/behavior_loss_teacher_driven",
        "Distillation/behavior_loss_student_driven",
        "Distillation/learning_rate",
    }
    assert expected <= tags

    def series(tag):
        return {e.step: e.value for e in acc.Scalars(tag)}

    assert series("Distillation/beta") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    assert series("Distillation/training_phase") == {0: 1.0, 1: 1.0, 2: 2.0, 3: 2.0}
    assert series("Distillation/current_iteration") == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}
    assert series("Distillation/teacher_fraction") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    # split losses are logged only for iterations that had such samples
    assert set(series("Distillation/behavior_loss_teacher_driven")) == {0, 1}
    assert set(series("Distillation/behavior_loss_student_driven")) == {2, 3}


def test_split_losses_average_to_the_behavior_loss(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "constant", "beta": 0.5}}, num_envs=64)
    alg = r.alg
    alg.train_mode()
    rollout(alg, r.env, 8)
    loss = alg.update()["behavior"]
    m = alg.last_metrics
    frac = m["Distillation/teacher_fraction"]
    mixed = (
        frac * m["Distillation/behavior_loss_teacher_driven"]
        + (1 - frac) * m["Distillation/behavior_loss_student_driven"]
    )
    assert mixed == pytest.approx(loss, rel=1e-4)


@pytest.mark.parametrize("runner", RESUME_RUNNERS)
@pytest.mark.parametrize("granularity", ["step", "episode"])
def test_resume_continues_schedule_generator_and_iteration(tmp_path, teacher_path, runner, granularity):
    algo = {"mixing": {"schedule": "constant", "beta": 0.5, "granularity": granularity}}
    a = make_runner(tmp_path / "a", teacher_path, algo, runner=runner, log=True, save_interval=1)
    a.learn(2)  # iterations 0, 1
    gen_after_1 = a.alg.mixing_policy.generator.get_state().clone()
    mask_after_1 = a.alg.mixing_policy.teacher_mask.clone()
    saved = str(tmp_path / "model_1.pt")
    shutil.copy(tmp_path / "a" / "logs" / "model_1.pt", saved)
    a.learn(2)  # a second learn() in one process: rsl_rl repeats iteration 1, then runs 2
    assert a.alg.last_metrics["Distillation/current_iteration"] == 2.0
    ckpt = torch.load(saved, weights_only=False)
    assert ckpt["iter"] == 1 and ckpt[CHECKPOINT_KEY]["format_version"] == 1

    b = make_runner(tmp_path / "b", None, algo, runner=runner)
    with torch.random.fork_rng():
        b.load(saved)
    assert b.current_learning_iteration == 1 and b.alg.iteration == 1
    assert torch.equal(b.alg.mixing_policy.generator.get_state(), gen_after_1)
    assert torch.equal(b.alg.mixing_policy.teacher_mask, mask_after_1)
    b.learn(1)  # resumes at the saved iteration 1 (rsl_rl repeats it)
    assert b.alg.last_metrics["Distillation/current_iteration"] == 1.0
    if granularity == "step":  # mask draws do not depend on the env: the continued stream matches exactly
        c = make_runner(tmp_path / "c", teacher_path, algo, runner=runner)
        c.learn(3)  # iterations 0, 1, 2: the third rollout draws what b's first rollout drew
        assert torch.equal(b.alg.teacher_masks, c.alg.teacher_masks)


@pytest.mark.parametrize("runner", RESUME_RUNNERS)
def test_resume_continues_the_schedule(tmp_path, teacher_path, runner):
    algo = {"mixing": {"schedule": "linear", "start": 0.9, "end": 0.1, "iterations": 8}}
    a = make_runner(tmp_path / "a", teacher_path, algo, runner=runner, log=True, save_interval=1)
    a.learn(4)
    b = make_runner(tmp_path / "b", None, algo, runner=runner)
    b.load(str(tmp_path / "a" / "logs" / "model_2.pt"))
    b.learn(2)  # iterations 2, 3
    assert b.alg.last_metrics["Distillation/current_iteration"] == 3.0
    assert b.alg.last_metrics["Distillation/beta"] == pytest.approx(0.9 - 0.8 * 3 / 8)
    assert b.alg.last_metrics["Distillation/beta"] == a.alg.last_metrics["Distillation/beta"]


def test_no_banner_after_resuming_past_the_switch(tmp_path, teacher_path, capsys):
    algo = {"mixing": {"schedule": "two_stage", "phase1_iterations": 2}}
    a = make_runner(tmp_path / "a", teacher_path, algo, log=True, save_interval=1)
    a.learn(4)
    capsys.readouterr()
    b = make_runner(tmp_path / "b", None, algo)
    b.load(str(tmp_path / "a" / "logs" / "model_3.pt"))
    b.learn(2)
    out = capsys.readouterr().out
    assert "SWITCHING TO PHASE 2" not in out and "Training Phase: Phase 2 (student actions)" in out
    c = make_runner(tmp_path / "c", None, algo)
    c.load(str(tmp_path / "a" / "logs" / "model_1.pt"))  # resumes at 1 (beta 1), switches at 2
    c.learn(2)
    assert "  Iteration: 2\n" in capsys.readouterr().out


def test_checkpoint_loads_into_stock_rsl_rl(tmp_path, teacher_path):
    a = make_runner(
        tmp_path / "a", teacher_path, {"mixing": {"schedule": "two_stage", "phase1_iterations": 1}}, log=True
    )
    a.learn(2)
    path = sorted(glob.glob(str(tmp_path / "a" / "logs" / "model_*.pt")))[-1]
    cfg_algo = {"class_name": "Distillation"}
    stock = make_runner(tmp_path / "s", None, cfg_algo, runner="stock")
    stock.load(path)
    assert type(stock.alg).__name__ == "Distillation"
    policy = stock.get_inference_policy()
    obs = stock.env.get_observations()
    assert torch.equal(policy(obs), a.get_inference_policy()(obs))


EXPLICIT_DEFAULTS = {
    "learning_rate_schedule": "constant",
    "min_learning_rate": 0.0,
    "warmup_iterations": 0,
    "learning_rate_iterations": None,
    "ema_decay": None,
    "replay": {"iterations": 0},
}


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("student", ["mlp", "gru"])
def test_student_only_trains_bit_for_bit_like_stock_distillation(tmp_path, teacher_path, student, explicit):
    states = []
    mixing = {"class_name": "dagmix.algorithms:MixingDistillation", **(EXPLICIT_DEFAULTS if explicit else {})}
    for algo in ({"class_name": "Distillation"}, mixing):
        torch.manual_seed(7)
        runner = "stock" if algo["class_name"] == "Distillation" or compat.RESOLVES_CLASS_PATHS else "mixing"
        r = make_runner(tmp_path, teacher_path, algo, runner=runner, student=student)
        r.learn(3)
        states.append((r.alg.policy if compat.STUDENT_TEACHER_POLICY else r.alg.student).state_dict())
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_seed_spelling_equals_mixing_spelling(tmp_path, teacher_path):
    a = make_runner(tmp_path, teacher_path, {"use_two_stage_training": True, "phase1_iterations": 500})
    b = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "step", "phase1_iterations": 500}})
    assert repr(a.alg.schedule) == repr(b.alg.schedule) == "StepSchedule(phase1_iterations=500)"
    c = make_runner(tmp_path, teacher_path, {"use_two_stage_training": False, "phase1_iterations": 500})
    assert c.alg.schedule.beta(0) == 0.0  # phase1_iterations is read only with use_two_stage_training=True


def test_switch_to_phase2_forces_beta_zero_from_next_iteration(tmp_path, teacher_path, capsys):
    r = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "teacher_only"}})
    r.learn(2)
    r.alg.switch_to_phase2()
    r.learn(2)  # rsl_rl repeats iteration 1 (still beta 1), then runs 2, the first forced phase-2 iteration
    assert r.alg.last_metrics["Distillation/beta"] == 0.0
    out = capsys.readouterr().out
    assert "  Iteration: 2\n" in out and out.count("SWITCHING TO PHASE 2") == 1


@pytest.mark.parametrize(
    ("algo", "match"),
    [
        ({"use_two_stage_training": True, "phase1_iterations": -1}, r"phase1_iterations=-1"),
        ({"use_two_stage_training": True}, r"needs phase1_iterations"),
        ({"mixing": {"schedule": "constant", "beta": 1.5}}, r"beta=1.5"),
        ({"mixing": {"schedule": "stepp"}}, r"'stepp' is not one of .*Did you mean 'step'"),
        (
            {"mixing": {"schedule": "step", "phase1_iterations": 5, "granularity": "sometimes"}},
            r"'sometimes' is not one of 'step', 'episode', 'iteration'",
        ),
        ({"mixing": {"schedule": "step", "phase1_iterations": 5, "assignment": "lottery"}}, r"'lottery'"),
        ({"mixing": {"schedule": "step", "phase1_iterations": 5, "phase_1": 3}}, r"Unknown key"),
        (
            {"mixing": {"schedule": "constant", "beta": 0.5, "granularity": "episode", "assignment": "quota"}},
            r"quota.*episode",
        ),
        (
            {
                "mixing": {"schedule": "two_stage", "phase1_iterations": 5},
                "use_two_stage_training": True,
                "phase1_iterations": 5,
            },
            r"Both a non-empty 'mixing' and use_two_stage_training=True",
        ),
        ({"use_two_stage_trainng": True}, r"Did you mean 'use_two_stage_training'"),
        (
            {"frobnicate": 1},
            r"Unknown algorithm key 'frobnicate' for MixingDistillation; its keys are .*use_two_stage_training, "
            r"phase1_iterations, mixing, .* and rsl_rl's Distillation keys \(.*gradient_length",
        ),
    ],
)
def test_bad_config_fails_before_training(tmp_path, algo, match):
    with pytest.raises(ValueError, match=match):
        make_runner(tmp_path, None, algo)


@pytest.mark.parametrize("runner", RUNNERS)
def test_no_teacher_loaded_is_an_error(tmp_path, runner):
    r = make_runner(tmp_path, None, {"mixing": {"schedule": "two_stage", "phase1_iterations": 1}}, runner=runner)
    with pytest.raises(ValueError, match=re.escape("Teacher model parameters not loaded")):
        r.learn(1)


def test_switch_beyond_run_end_warns_with_both_numbers(tmp_path, teacher_path):
    if not compat.STUDENT_TEACHER_POLICY:  # the 4.x/5.x stock runner starts learn() through the algorithm
        r = make_runner(
            tmp_path,
            teacher_path,
            {"mixing": {"schedule": "two_stage", "phase1_iterations": 50}},
            runner="stock",
            max_iterations=3,
        )
        with pytest.warns(UserWarning, match=r"iteration 50.*ends after iteration 2"):
            r.learn(3)
    m = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "two_stage", "phase1_iterations": 50}})
    with pytest.warns(UserWarning, match=r"iteration 50.*ends after iteration 1"):
        m.learn(2)


def test_user_config_is_not_modified_by_mixing_runner(tmp_path, teacher_path):
    from helpers import make_env, make_train_cfg

    cfg = make_train_cfg({"mixing": {"schedule": "two_stage", "phase1_iterations": 2}})
    del cfg["algorithm"]["class_name"]
    mixing_before = dict(cfg["algorithm"]["mixing"])
    r = MixingDistillationRunner(make_env(), cfg, None, "cpu")
    assert "class_name" not in cfg["algorithm"] and cfg["algorithm"]["mixing"] == mixing_before
    assert isinstance(r.alg, MixingDistillation)


def test_teacher_action_clip_changes_only_the_stored_label(tmp_path, teacher_path):
    r = make_runner(
        tmp_path, teacher_path, {"mixing": {"schedule": "teacher_only"}, "teacher_action_clip": 1.0}, num_envs=64
    )
    with torch.no_grad():
        teacher_mlp = r.alg.policy.teacher if compat.STUDENT_TEACHER_POLICY else r.alg.teacher.mlp
        teacher_mlp[-1].weight.mul_(100.0)  # a teacher whose actions leave [-1, 1]
    r.alg.train_mode()
    rollout(r.alg, r.env, 8)
    executed, labels = r.alg.executed_actions, r.alg.storage.privileged_actions
    assert executed.abs().max() > 1.0  # the env receives the raw teacher action (and clamps it itself)
    r.alg._check_and_clip_labels(8)  # the first thing update() does: the finite check, then the clip
    assert labels.abs().max() <= 1.0
    assert torch.equal(labels, executed.clamp(-1.0, 1.0))
    with pytest.raises(ValueError, match=r"teacher_action_clip=-1"):
        make_runner(tmp_path, None, {"teacher_action_clip": -1})


def test_iteration_callbacks_add_scalars_to_the_iteration_log(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "two_stage", "phase1_iterations": 1}})
    seen = []

    def callback(it, metrics):
        seen.append((it, metrics["Distillation/beta"]))
        return {"Eval/student_return": 10.0 + it} if it == 1 else None

    r.alg.iteration_callbacks.append(callback)
    r.learn(3)
    assert seen == [(0, 1.0), (1, 0.0), (2, 0.0)]
    assert "Eval/student_return" not in r.alg.last_metrics  # only iteration 1 returned it
    assert r.alg.extras_log.last.get("Eval/student_return") is None  # and it is not left behind in a reused dict


def test_mixed_precision_keeps_working(tmp_path, teacher_path):
    from dagmix.algorithms import compat

    if not compat.HAS_MIXED_PRECISION:
        pytest.skip("rsl-rl-lib < 5.5 has no use_mixed_precision")
    algo = {"mixing": {"schedule": "constant", "beta": 0.5}, "use_mixed_precision": True}
    r = make_runner(tmp_path, teacher_path, algo, student="gru", num_envs=32)
    r.learn(2)
    m = r.alg.last_metrics
    assert m["Distillation/behavior_loss_teacher_driven"] >= 0 and m["Distillation/behavior_loss_student_driven"] >= 0


def test_torch_compile_mode_keeps_working(tmp_path, teacher_path):
    from helpers import make_env, make_train_cfg
    from rsl_rl.algorithms import Distillation
    from rsl_rl.runners import DistillationRunner

    if not hasattr(Distillation, "compile"):
        pytest.skip("rsl-rl-lib < 5.4 has no torch_compile_mode")

    cfg = make_train_cfg({"mixing": {"schedule": "two_stage", "phase1_iterations": 1}})
    cfg["torch_compile_mode"] = "default"
    r = DistillationRunner(make_env(), cfg, None, "cpu")
    assert r.alg.student is not r.alg._raw_student  # compiled wrapper
    r.load(teacher_path)
    r.learn(2)
    assert r.alg.last_metrics["Distillation/beta"] == 0.0
    assert torch.equal(r.alg.executed_actions, r.alg.storage.actions)  # phase 2: the student drove
