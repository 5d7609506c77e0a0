"""dagmix: per-env beta-mixing (DAgger) schedules for teacher-student distillation with rsl_rl."""

from dagmix.mixing import (
    BetaSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    MixingConfig,
    MixingPolicy,
    PiecewiseLinearSchedule,
    StepSchedule,
    build_schedule,
    schedule_names,
)

__version__ = "0.1.0"

__all__ = [
    "BetaSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "MixingConfig",
    "MixingPolicy",
    "PiecewiseLinearSchedule",
    "StepSchedule",
    "__version__",
    "build_schedule",
    "schedule_names",
]
