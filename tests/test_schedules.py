"""Beta schedules, build_schedule / presets and MixingConfig: closed-form values, validation and parsing."""

from __future__ import annotations

import copy
import re

import pytest

from dagmix.mixing import (
    PRESETS,
    SCHEDULE_KINDS,
    BetaSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    MixingConfig,
    PiecewiseLinearSchedule,
    StepSchedule,
    build_schedule,
    schedule_names,
)

SCAN = 300  # iterations scanned by brute-force checks


def all_schedules() -> list[BetaSchedule]:
    return [
        ConstantSchedule(0.0),
        ConstantSchedule(0.37),
        ConstantSchedule(1.0),
        StepSchedule(0),
        StepSchedule(7),
        LinearSchedule(1.0, 0.0, 10),
        LinearSchedule(0.2, 0.9, 25),
        CosineSchedule(1.0, 0.0, 10),
        CosineSchedule(0.1, 0.6, 33),
        ExponentialSchedule(0.5, cutoff=0.1),
        ExponentialSchedule(0.99, start=0.8, cutoff=0.1),
        PiecewiseLinearSchedule([(0, 1), (10, 0.5), (20, 0)]),
        PiecewiseLinearSchedule([(3, 0.2), (9, 1.0), (40, 0.4)]),
    ]


def schedule_id(s: BetaSchedule) -> str:
    return repr(s)


# --------------------------------------------------------------------------- closed-form values
def test_step_schedule_switches_exactly_at_phase1_iterations():
    s = StepSchedule(500)
    assert s.beta(0) == 1.0
    assert s.beta(499) == 1.0
    assert s.beta(500) == 0.0
    assert s.beta(10_000) == 0.0
    assert s.phase(499) == 1
    assert s.phase(500) == 2
    assert s.first_zero_iteration() == 500
    assert s(499) == 1.0 and s(500) == 0.0  # __call__ is beta


def test_step_schedule_zero_is_student_from_the_start():
    s = StepSchedule(0)
    assert [s.beta(i) for i in range(5)] == [0.0] * 5
    assert s.phase(0) == 2
    assert s.first_zero_iteration() == 0


@pytest.mark.parametrize("value", [0.0, 0.25, 1.0])
def test_constant_schedule(value):
    s = ConstantSchedule(value)
    assert {s.beta(i) for i in range(50)} == {value}
    assert s.first_zero_iteration() == (0 if value == 0.0 else None)
    assert s.phase(3) == (2 if value == 0.0 else 1)


def test_linear_schedule_values():
    s = LinearSchedule(1.0, 0.0, 10)
    assert s.beta(0) == 1.0
    assert s.beta(5) == pytest.approx(0.5)
    assert s.beta(10) == 0.0
    assert s.beta(20) == 0.0
    assert s.first_zero_iteration() == 10
    assert all(s.beta(i) > s.beta(i + 1) for i in range(10))  # strictly decreasing on the ramp


def test_linear_schedule_rising():
    s = LinearSchedule(0.2, 0.8, 4)
    assert [s.beta(i) for i in range(6)] == pytest.approx([0.2, 0.35, 0.5, 0.65, 0.8, 0.8])
    assert s.first_zero_iteration() is None


@pytest.mark.parametrize(("start", "end", "iterations"), [(1.0, 0.0, 10), (0.8, 0.2, 100), (0.1, 0.9, 6)])
def test_cosine_schedule_midpoint_and_end(start, end, iterations):
    s = CosineSchedule(start, end, iterations)
    assert s.beta(0) == pytest.approx(start)
    assert s.beta(iterations // 2) == pytest.approx((start + end) / 2)
    assert s.beta(iterations) == end
    assert s.beta(iterations + 50) == end
    # monotone between start and end
    values = [s.beta(i) for i in range(iterations + 1)]
    diffs = [b - a for a, b in zip(values[:-1], values[1:], strict=True)]
    assert all(d * (end - start) >= 0 for d in diffs)


def test_cosine_schedule_first_zero_iteration():
    assert CosineSchedule(1.0, 0.0, 10).first_zero_iteration() == 10
    assert CosineSchedule(1.0, 0.3, 10).first_zero_iteration() is None


def test_exponential_schedule_values():
    s = ExponentialSchedule(0.5, cutoff=0.1)
    assert [s.beta(i) for i in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert s.beta(4) == 0.0  # 0.0625 < cutoff 0.1
    assert s.beta(100) == 0.0
    assert s.first_zero_iteration() == 4
    assert s.phase(3) == 1 and s.phase(4) == 2


@pytest.mark.parametrize(
    ("decay", "start", "cutoff"),
    [
        (0.5, 1.0, 0.1),
        (0.9, 1.0, 0.01),
        (0.95, 0.8, 0.05),
        (0.1, 1.0, 0.001),  # 0.1**3 rounds to just above 0.001
        (0.5, 1.0, 0.125),  # exact power: 0.5**3 == cutoff is not below it
        (0.5, 0.05, 0.1),  # start below cutoff: zero from iteration 0
        (0.5, 0.1, 0.1),  # start == cutoff: one non-zero iteration
        (0.99, 1.0, 0.5),
        (0.7, 0.3, 0.29),
        (0.999, 1.0, 0.9),
        (0.3, 0.0, 0.01),
        (0.6, 1.0, 1.0),
    ],
)
def test_exponential_first_zero_iteration_matches_brute_force(decay, start, cutoff):
    s = ExponentialSchedule(decay, start=start, cutoff=cutoff)
    # independent of the schedule: the first i whose start * decay**i falls below the cutoff (or is 0)
    expected = next(i for i in range(SCAN) if start * decay**i < cutoff or start == 0.0)
    assert s.first_zero_iteration() == expected
    scan = [s.beta(i) for i in range(SCAN)]
    assert all(b == 0.0 for b in scan[expected:])
    assert scan[:expected] == [start * decay**i for i in range(expected)]


def test_piecewise_linear_interpolation():
    s = PiecewiseLinearSchedule([(0, 1), (10, 0.5), (20, 0)])
    assert s.beta(0) == 1.0
    assert s.beta(5) == pytest.approx(0.75)
    assert s.beta(10) == 0.5
    assert s.beta(15) == pytest.approx(0.25)
    assert s.beta(19) == pytest.approx(0.05)
    assert s.beta(20) == 0.0
    assert s.beta(1000) == 0.0
    assert s.first_zero_iteration() == 20


def test_piecewise_linear_constant_before_first_and_after_last_point():
    s = PiecewiseLinearSchedule([(5, 0.8), (15, 0.2)])
    assert [s.beta(i) for i in range(6)] == [0.8] * 6
    assert s.beta(10) == pytest.approx(0.5)
    assert [s.beta(i) for i in (15, 16, 500)] == [0.2] * 3
    assert s.first_zero_iteration() is None


def test_piecewise_linear_first_zero_iteration():
    assert PiecewiseLinearSchedule([(4, 0.0), (9, 0.5)]).first_zero_iteration() == 0
    assert PiecewiseLinearSchedule([(0, 0.5), (6, 0.0), (12, 0.7)]).first_zero_iteration() == 6
    single = PiecewiseLinearSchedule([(3, 0.4)])
    assert [single.beta(i) for i in (0, 3, 99)] == [0.4] * 3
    assert single.first_zero_iteration() is None


# --------------------------------------------------------------------------- properties of every schedule
@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_beta_within_unit_interval(schedule):
    values = [schedule.beta(i) for i in range(SCAN)]
    assert all(isinstance(b, float) and 0.0 <= b <= 1.0 for b in values)
    assert [schedule.phase(i) for i in range(SCAN)] == [1 if b > 0 else 2 for b in values]


@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_first_zero_iteration_agrees_with_beta(schedule):
    values = [schedule.beta(i) for i in range(SCAN)]
    zero = schedule.first_zero_iteration()
    if zero is None:
        assert 0.0 not in values
    else:
        assert values[zero] == 0.0
        assert 0.0 not in values[:zero]


def test_cosine_first_zero_iteration_when_starting_at_zero():
    s = CosineSchedule(0.0, 0.5, 10)
    assert s.beta(0) == 0.0
    assert s.first_zero_iteration() == 0  # LinearSchedule(0.0, 0.5, 10) returns 0 here


def test_exponential_without_cutoff_is_rejected():
    # beta would reach 0 only by underflow (0.5**2000 == 0.0), so phase 2 would start at no stated iteration
    with pytest.raises(ValueError, match=r"cutoff=0.0 .*positive cutoff"):
        ExponentialSchedule(0.5, cutoff=0.0)


@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_describe_is_one_line_naming_the_class(schedule):
    text = schedule.describe()
    assert isinstance(text, str) and text
    assert "\n" not in text
    assert type(schedule).__name__ in text


@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_stateless_schedules_state_dict(schedule):
    assert schedule.state_dict() == {}
    schedule.load_state_dict({})
    with pytest.raises(ValueError, match="stateless"):
        schedule.load_state_dict({"x": 1})


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: ConstantSchedule(1.5), r"beta=1\.5"),
        (lambda: ConstantSchedule(-0.1), r"beta=-0\.1"),
        (lambda: ConstantSchedule(float("nan")), r"beta=nan"),
        (lambda: ConstantSchedule("0.5"), r"beta='0\.5'"),
        (lambda: StepSchedule(-1), r"phase1_iterations=-1"),
        (lambda: StepSchedule(2.5), r"phase1_iterations=2\.5"),
        (lambda: StepSchedule(True), r"phase1_iterations=True"),
        (lambda: LinearSchedule(1.0, 0.0, iterations=0), r"iterations=0"),
        (lambda: LinearSchedule(1.2, 0.0, iterations=5), r"start=1\.2"),
        (lambda: LinearSchedule(1.0, -0.5, iterations=5), r"end=-0\.5"),
        (lambda: CosineSchedule(1.0, 0.0, iterations=0), r"iterations=0"),
        (lambda: ExponentialSchedule(decay=1.0), r"decay=1\.0"),
        (lambda: ExponentialSchedule(decay=0), r"decay=0\b"),
        (lambda: ExponentialSchedule(decay=-0.5), r"decay=-0\.5"),
        (lambda: ExponentialSchedule(decay=0.5, cutoff=2.0), r"cutoff=2\.0"),
        (lambda: PiecewiseLinearSchedule([]), r"points=\[\]"),
        (lambda: PiecewiseLinearSchedule([(0, 1.0), (0, 0.5)]), r"got 0 then 0"),
        (lambda: PiecewiseLinearSchedule([(0, 1.0), (10, 0.5), (5, 0.0)]), r"got 10 then 5"),
        (lambda: PiecewiseLinearSchedule([(0, 1.0, 2)]), r"points\[0\]"),
        (lambda: PiecewiseLinearSchedule([(0, 1.0), (5, 1.5)]), r"points\[1\] beta=1\.5"),
        (lambda: PiecewiseLinearSchedule([(-1, 1.0)]), r"points\[0\] iteration=-1"),
    ],
)
def test_constructor_validation_names_the_bad_value(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_linear_zero_iterations_message_points_to_alternatives():
    with pytest.raises(ValueError, match=r"iterations=0 must be >= 1") as info:
        LinearSchedule(1.0, 0.0, iterations=0)
    assert "StepSchedule" in str(info.value)


@pytest.mark.parametrize("iteration", [-1, 1.5, True, "3", None])
def test_beta_rejects_bad_iterations(iteration):
    with pytest.raises(ValueError, match=re.escape(f"iteration={iteration!r}")):
        StepSchedule(5).beta(iteration)


# --------------------------------------------------------------------------- build_schedule and presets
def test_two_stage_preset_equals_step_schedule():
    built = build_schedule("two_stage", phase1_iterations=500)
    ref = StepSchedule(500)
    assert isinstance(built, StepSchedule)
    assert [built.beta(i) for i in range(1000)] == [ref.beta(i) for i in range(1000)]
    assert built.first_zero_iteration() == 500


def test_kind_names_build_their_classes():
    assert isinstance(build_schedule("step", phase1_iterations=3), StepSchedule)
    assert build_schedule("constant", beta=0.4).beta(9) == 0.4
    lin = build_schedule("linear", start=1.0, end=0.0, iterations=4)
    assert [lin.beta(i) for i in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert build_schedule("piecewise_linear", points=[(0, 1), (2, 0)]).beta(1) == pytest.approx(0.5)
    assert build_schedule("exponential", decay=0.5, cutoff=0.1).first_zero_iteration() == 4
    assert build_schedule("cosine", iterations=10).beta(10) == 0.0


def test_student_and_teacher_only_presets():
    student, teacher = build_schedule("student_only"), build_schedule("teacher_only")
    assert {student.beta(i) for i in range(SCAN)} == {0.0}
    assert {teacher.beta(i) for i in range(SCAN)} == {1.0}
    assert student.first_zero_iteration() == 0
    assert teacher.first_zero_iteration() is None


def test_dagger_first_preset():
    s = build_schedule("dagger_first")
    assert s.beta(0) == 1.0
    assert s.beta(1) == 0.0
    assert s.first_zero_iteration() == 1


def test_dagger_linear_preset_needs_iterations():
    with pytest.raises(ValueError, match=r"'dagger_linear' needs \['iterations'\]"):
        build_schedule("dagger_linear")
    s = build_schedule("dagger_linear", iterations=10)
    assert s.beta(0) == 1.0 and s.beta(5) == pytest.approx(0.5) and s.beta(10) == 0.0


def test_dagger_exp_preset_defaults():
    s = build_schedule("dagger_exp")
    assert isinstance(s, ExponentialSchedule)
    assert (s.decay, s.start, s.cutoff) == (0.95, 1.0, 0.01)
    assert s.beta(1) == pytest.approx(0.95)
    assert s.beta(89) > 0.01  # 0.95**89 ~= 0.0104
    assert s.beta(90) == 0.0  # 0.95**90 ~= 0.0099 < 0.01
    assert s.first_zero_iteration() == 90
    custom = build_schedule("dagger_exp", decay=0.5, cutoff=0.1)
    assert custom.first_zero_iteration() == 4


def test_schedule_names_lists_kinds_and_presets():
    names = schedule_names()
    assert set(names) == set(SCHEDULE_KINDS) | set(PRESETS)
    assert {"step", "two_stage", "dagger_exp", "piecewise_linear"} <= set(names)


def test_unknown_schedule_name_lists_options_and_suggests():
    with pytest.raises(ValueError) as info:
        build_schedule("two_stag", phase1_iterations=5)
    msg = str(info.value)
    assert "'two_stag'" in msg
    assert "Did you mean 'two_stage'?" in msg
    for name in schedule_names():
        assert repr(name) in msg


def test_unknown_schedule_name_without_close_match():
    with pytest.raises(ValueError, match="is not one of") as info:
        build_schedule("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_non_string_schedule_name():
    with pytest.raises(ValueError, match="is not one of"):
        build_schedule(3)


def test_unknown_parameter_lists_valid_parameters():
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['stop'\]") as info:
        build_schedule("linear", start=1.0, stop=0.0, iterations=5)
    assert "start, end, iterations" in str(info.value)
    with pytest.raises(ValueError, match=r"its parameters are: none"):
        build_schedule("teacher_only", beta=1.0)


def test_missing_required_parameter():
    with pytest.raises(ValueError, match=r"'step' needs \['phase1_iterations'\]"):
        build_schedule("step")
    with pytest.raises(ValueError, match=r"'exponential' needs \['decay'\]"):
        build_schedule("exponential")


def test_out_of_range_parameter_passes_through_build_schedule():
    with pytest.raises(ValueError, match=r"beta=2"):
        build_schedule("constant", beta=2)


# --------------------------------------------------------------------------- MixingConfig
def test_from_dict_step():
    cfg = MixingConfig.from_dict({"schedule": "step", "phase1_iterations": 500})
    assert cfg.schedule == "step"
    assert cfg.schedule_params == {"phase1_iterations": 500}
    assert (cfg.granularity, cfg.assignment, cfg.seed) == ("step", "random", None)
    s = cfg.build_schedule()
    assert isinstance(s, StepSchedule)
    assert s.phase1_iterations == 500
    assert s.beta(499) == 1.0 and s.beta(500) == 0.0


def test_from_dict_two_stage_is_equivalent_to_step():
    step = MixingConfig.from_dict({"schedule": "step", "phase1_iterations": 500}).build_schedule()
    two = MixingConfig.from_dict({"schedule": "two_stage", "phase1_iterations": 500}).build_schedule()
    assert type(two) is type(step)
    assert [two.beta(i) for i in range(0, 1000, 7)] == [step.beta(i) for i in range(0, 1000, 7)]
    assert two.first_zero_iteration() == step.first_zero_iteration() == 500


def test_build_schedule_returns_fresh_objects():
    cfg = MixingConfig.from_dict({"schedule": "constant", "beta": 0.5})
    assert cfg.build_schedule() is not cfg.build_schedule()


def test_from_dict_sets_own_fields():
    cfg = MixingConfig.from_dict(
        {"schedule": "dagger_exp", "decay": 0.9, "granularity": "iteration", "assignment": "quota", "seed": 7}
    )
    assert (cfg.granularity, cfg.assignment, cfg.seed) == ("iteration", "quota", 7)
    assert cfg.schedule_params == {"decay": 0.9}
    assert cfg.build_schedule().decay == 0.9


def test_from_dict_missing_schedule():
    with pytest.raises(ValueError, match=r"has no 'schedule'") as info:
        MixingConfig.from_dict({"phase1_iterations": 500})
    assert "two_stage" in str(info.value)


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ValueError, match="mixing must be a dict, got list"):
        MixingConfig.from_dict([("schedule", "step")])


def test_from_dict_passes_config_through():
    cfg = MixingConfig.from_dict({"schedule": "student_only"})
    assert MixingConfig.from_dict(cfg) is cfg


def test_from_dict_unknown_key_suggests_close_match():
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['phase1_iteration'\]") as info:
        MixingConfig.from_dict({"schedule": "step", "phase1_iteration": 500})
    msg = str(info.value)
    assert "did you mean 'phase1_iterations'?" in msg
    for key in ("phase1_iterations", "granularity", "assignment", "seed"):
        assert key in msg


def test_from_dict_unknown_key_for_own_field_typo():
    with pytest.raises(ValueError, match=r"did you mean 'granularity'\?"):
        MixingConfig.from_dict({"schedule": "student_only", "granularty": "step"})


def test_from_dict_unknown_schedule_name():
    with pytest.raises(ValueError, match=r"Did you mean 'two_stage'\?"):
        MixingConfig.from_dict({"schedule": "two_stag", "phase1_iterations": 500})


def test_granularity_error_lists_options():
    with pytest.raises(ValueError, match=re.escape("'sometimes' is not one of 'step', 'episode', 'iteration'")):
        MixingConfig.from_dict({"schedule": "student_only", "granularity": "sometimes"})


def test_unknown_assignment():
    with pytest.raises(ValueError, match=re.escape("'lottery' is not one of 'random', 'quota'")):
        MixingConfig.from_dict({"schedule": "student_only", "assignment": "lottery"})


def test_quota_with_episode_granularity_raises():
    with pytest.raises(ValueError, match=r"assignment='quota' cannot be combined with granularity='episode'"):
        MixingConfig.from_dict({"schedule": "student_only", "assignment": "quota", "granularity": "episode"})
    # each is fine on its own
    MixingConfig.from_dict({"schedule": "student_only", "assignment": "quota", "granularity": "step"})
    MixingConfig.from_dict({"schedule": "student_only", "assignment": "random", "granularity": "episode"})


@pytest.mark.parametrize("seed", [1.5, "3", True])
def test_seed_must_be_int(seed):
    with pytest.raises(ValueError, match=re.escape(f"mixing.seed={seed!r} must be an int or None")):
        MixingConfig.from_dict({"schedule": "student_only", "seed": seed})


def test_seed_int_or_none_accepted():
    assert MixingConfig.from_dict({"schedule": "student_only", "seed": 3}).seed == 3
    assert MixingConfig.from_dict({"schedule": "student_only", "seed": None}).seed is None


def test_schedule_params_validated_at_construction():
    with pytest.raises(ValueError, match=r"phase1_iterations=-5"):
        MixingConfig.from_dict({"schedule": "step", "phase1_iterations": -5})
    with pytest.raises(ValueError, match=r"needs \['phase1_iterations'\]"):
        MixingConfig.from_dict({"schedule": "two_stage"})


def test_from_dict_does_not_mutate_input():
    raw = {
        "schedule": "piecewise_linear",
        "points": [[0, 1.0], [10, 0.0]],
        "granularity": "iteration",
        "assignment": "quota",
        "seed": 3,
    }
    before = copy.deepcopy(raw)
    cfg = MixingConfig.from_dict(raw)
    assert raw == before
    cfg.schedule_params["points"] = []  # the config's params are its own dict
    assert raw == before


@pytest.mark.parametrize(
    "raw",
    [
        {"schedule": "step", "phase1_iterations": 500},
        {"schedule": "two_stage", "phase1_iterations": 3, "granularity": "iteration", "assignment": "quota", "seed": 5},
        {"schedule": "dagger_exp", "granularity": "episode"},
        {"schedule": "linear", "start": 0.9, "end": 0.1, "iterations": 20, "seed": 0},
        {"schedule": "piecewise_linear", "points": [[0, 1.0], [4, 0.5]]},
        {"schedule": "student_only"},
    ],
)
def test_to_dict_round_trips(raw):
    cfg = MixingConfig.from_dict(raw)
    out = cfg.to_dict()
    assert out["schedule"] == raw["schedule"]
    assert {k: v for k, v in out.items() if k in raw} == raw
    again = MixingConfig.from_dict(out)
    assert again == cfg
    assert again.to_dict() == out
    a, b = cfg.build_schedule(), again.build_schedule()
    assert [a.beta(i) for i in range(50)] == [b.beta(i) for i in range(50)]
