"""Adaptive (closed-loop) schedules: decisions at the right iteration, hysteresis, deadline, state, in the loop."""

from __future__ import annotations

import math

import pytest
from helpers import make_runner

from dagmix.mixing import build_schedule
from dagmix.mixing.adaptive import DiscrepancyGatedSchedule, LossTriggeredSchedule, ReturnRatioSchedule


def _feed(schedule, values, signal="behavior_loss", start=0):
    """Observe ``values`` at iterations start, start+1, ...; return beta of each following iteration."""
    betas = []
    for i, v in enumerate(values):
        schedule.observe(start + i, {signal: v})
        betas.append(schedule.beta(start + i + 1))
    return betas


def test_loss_triggered_switches_after_patience_consecutive_iterations_below_threshold():
    s = LossTriggeredSchedule(threshold=0.1, patience=3, deadline=50)
    assert s.beta(0) == 1.0 and s.first_zero_iteration() == 50
    # below, below, above (count restarts), below x3 -> decided at iteration 5, so beta 0 from iteration 6
    betas = _feed(s, [0.05, 0.05, 0.2, 0.05, 0.05, 0.05])
    assert betas == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert s.first_zero_iteration() == 6 and s.beta(6) == 0.0 and s.phase(6) == 2


def test_loss_triggered_hysteresis_switches_back_only_above_the_second_threshold():
    s = LossTriggeredSchedule(threshold=0.1, patience=1, switch_back_threshold=0.5, deadline=100)
    assert _feed(s, [0.05]) == [0.0]
    assert _feed(s, [0.3, 0.45], start=1) == [0.0, 0.0]  # between the thresholds: stays
    assert _feed(s, [0.6], start=3) == [1.0]  # above the second: back to the teacher
    assert s.first_zero_iteration() == 100  # not at 0 any more: the deadline is the next sure zero
    assert _feed(s, [0.05], start=4) == [0.0] and s.first_zero_iteration() == 5


def test_loss_triggered_steps_down_and_the_deadline_wins():
    s = LossTriggeredSchedule(threshold=0.1, patience=1, step=0.5, deadline=3)
    assert _feed(s, [0.01, 0.9, 0.9]) == [0.5, 0.5, 0.0]  # iteration 3 is the deadline: 0 whatever the loss
    assert s.beta(3) == 0.0 and s.beta(1000) == 0.0


def test_loss_triggered_ignores_missing_signal_and_repeated_observations():
    s = LossTriggeredSchedule(threshold=0.1, patience=2, deadline=50)
    s.observe(0, {"behavior_loss": 0.01})
    s.observe(0, {"behavior_loss": 0.01})  # the same iteration again: no second count
    s.observe(1, {})  # nan: hold
    assert s.beta(2) == 1.0
    s.observe(2, {"behavior_loss": 0.01})
    assert s.beta(3) == 0.0


def test_adaptive_state_round_trip_continues_the_same_decisions():
    a = LossTriggeredSchedule(threshold=0.1, patience=3, deadline=50)
    _feed(a, [0.05, 0.05])
    b = LossTriggeredSchedule(threshold=0.1, patience=3, deadline=50)
    b.load_state_dict(a.state_dict())
    assert _feed(a, [0.05], start=2) == _feed(b, [0.05], start=2) == [0.0]
    d = DiscrepancyGatedSchedule(smoothing=0.5)
    _feed(d, [0.4, 0.2], signal="discrepancy")
    e = DiscrepancyGatedSchedule(smoothing=0.5)
    e.load_state_dict(d.state_dict())
    assert _feed(d, [0.1], "discrepancy", 2) == _feed(e, [0.1], "discrepancy", 2)
    with pytest.raises(ValueError, match="lacks"):
        e.load_state_dict({})


def test_discrepancy_gated_follows_the_signal_keeps_probes_and_is_monotone():
    s = DiscrepancyGatedSchedule(gain=1.0, probe_fraction=0.1, smoothing=0.0, min_beta=0.05)
    assert s.beta(0) == pytest.approx(0.9)  # the probe envs are student-driven from the start
    assert _feed(s, [2.0, 0.5, 0.8, math.nan, 0.01], "discrepancy") == pytest.approx([0.9, 0.5, 0.5, 0.5, 0.0])
    assert s.first_zero_iteration() == 5
    free = DiscrepancyGatedSchedule(smoothing=0.0, monotone=False)
    assert _feed(free, [0.3, 0.6], "discrepancy") == pytest.approx([0.3, 0.6])


def test_return_ratio_lowers_beta_as_the_student_approaches_the_teacher():
    s = ReturnRatioSchedule(target=0.95, probe_fraction=0.1, smoothing=0.0)
    assert _feed(s, [0.0, 0.475, 0.95], "return_ratio") == pytest.approx([0.9, 0.45, 0.0])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": 0.1, "deadline": 10, "switch_back_threshold": 0.1}, "hysteresis"),
        ({"threshold": -1.0, "deadline": 10}, "threshold=-1.0"),
        ({"threshold": 0.1}, "needs \\['deadline'\\]"),
        ({"threshold": 0.1, "deadline": 10, "step": 0.0}, "step=0"),
    ],
)
def test_loss_triggered_validation(params, match):
    with pytest.raises(ValueError, match=match):
        build_schedule("loss_triggered", **params)


def test_probe_fraction_zero_is_refused():
    with pytest.raises(ValueError, match="probe_fraction=0"):
        build_schedule("discrepancy_gated", probe_fraction=0.0)


# ---------------------------------------------------------------------------------------------- in the loop
def test_loss_triggered_in_the_training_loop_switches_logs_and_resumes(tmp_path, teacher_path, capsys):
    mixing = {"schedule": "loss_triggered", "threshold": 1e9, "patience": 2, "deadline": 100}
    r = make_runner(tmp_path, teacher_path, {"mixing": mixing}, max_iterations=4, log=True)
    betas = []
    r.alg.iteration_callbacks.append(lambda it, m: betas.append((it, m["Distillation/beta"])))
    r.learn(4)
    assert betas == [(0, 1.0), (1, 1.0), (2, 0.0), (3, 0.0)]  # two iterations below the threshold: switch at 2
    out = capsys.readouterr().out
    assert "SWITCHING TO PHASE 2" in out and "  Iteration: 2" in out
    m = r.alg.last_metrics
    assert m["Distillation/adaptive_next_beta"] == 0.0 and math.isfinite(m["Distillation/adaptive_signal"])
    path = tmp_path / "ckpt.pt"
    r.save(str(path))
    r2 = make_runner(tmp_path, None, {"mixing": mixing}, max_iterations=4)
    r2.load(str(path))
    assert r2.alg.schedule.beta(4) == 0.0 and r2.alg.schedule.first_zero_iteration() == 2


def test_discrepancy_gated_in_the_loop_measures_on_student_driven_states(tmp_path, teacher_path):
    mixing = {"schedule": "discrepancy_gated", "probe_fraction": 0.25, "smoothing": 0.0}
    r = make_runner(tmp_path, teacher_path, {"mixing": mixing}, num_envs=64)
    seen = []
    r.alg.iteration_callbacks.append(lambda it, m: seen.append(m))
    r.learn(3)
    assert seen[0]["Distillation/beta"] == pytest.approx(0.75)
    assert 0.5 < seen[0]["Distillation/teacher_fraction"] < 0.95
    signal = seen[0]["Distillation/adaptive_signal"]
    assert math.isfinite(signal) and signal > 0
    assert seen[0]["Distillation/adaptive_next_beta"] == pytest.approx(min(0.75, signal) if signal >= 0.05 else 0.0)
    assert seen[1]["Distillation/beta"] == pytest.approx(seen[0]["Distillation/adaptive_next_beta"])


def test_return_ratio_needs_episode_granularity_and_measures_pure_episodes(tmp_path, teacher_path):
    with pytest.raises(ValueError, match="granularity='episode'"):
        make_runner(tmp_path, teacher_path, {"mixing": {"schedule": "return_ratio"}})
    mixing = {"schedule": "return_ratio", "granularity": "episode", "probe_fraction": 0.5, "smoothing": 0.0}
    r = make_runner(tmp_path, teacher_path, {"mixing": mixing}, num_envs=64)  # episodes of 5 steps, 8 per rollout
    seen = []
    r.alg.iteration_callbacks.append(lambda it, m: seen.append(m))
    r.learn(2)
    ratio = seen[0]["Distillation/adaptive_signal"]
    assert math.isfinite(ratio) and ratio > 0
    expected = 0.5 * min(1.0, max(0.0, (0.95 - ratio) / 0.95))
    assert seen[0]["Distillation/adaptive_next_beta"] == pytest.approx(expected if expected >= 0.05 else 0.0)
    if seen[1]["Distillation/beta"] == 0.0:  # no teacher-driven episode to compare with: the decision holds
        assert math.isnan(seen[1]["Distillation/adaptive_signal"])
        assert seen[1]["Distillation/adaptive_next_beta"] == 0.0
