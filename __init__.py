"""dagmix: per-env beta-mixing (DAgger) schedules for teacher-student distillation with rsl_rl."""

from dagmix.mixing import (
    AdaptiveSchedule,
    BetaSchedule,
    ConstantSchedule,
    CosineSchedule,
    DiscrepancyGatedSchedule,
    ExponentialSchedule,
    LinearSchedule,
    LossTriggeredSchedule,
    MixingConfig,
    MixingPolicy,
    PiecewiseLinearSchedule,
    ReturnRatioSchedule,
    StepSchedule,
    build_schedule,
    schedule_names,
)

__version__ = "0.1.0"

__all__ = [
    "AdaptiveSchedule",
    "BetaSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "DiscrepancyGatedSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "LossTriggeredSchedule",
    "MixingConfig",
    "MixingPolicy",
    "PiecewiseLinearSchedule",
    "ReturnRatioSchedule",
    "StepSchedule",
    "__version__",
    "build_schedule",
    "schedule_names",
]
