"""Beta schedules and the per-env MixingPolicy (torch only; no rsl_rl import)."""

from dagmix.mixing.adaptive import (
    AdaptiveSchedule,
    DiscrepancyGatedSchedule,
    LossTriggeredSchedule,
    ReturnRatioSchedule,
)
from dagmix.mixing.coefficients import CoefficientSchedule
from dagmix.mixing.config import (
    ASSIGNMENTS,
    GRANULARITIES,
    PRESETS,
    SCHEDULE_KINDS,
    MixingConfig,
    build_schedule,
    schedule_names,
)
from dagmix.mixing.policy import MixingPolicy
from dagmix.mixing.schedules import (
    BetaSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseLinearSchedule,
    StepSchedule,
)

__all__ = [
    "ASSIGNMENTS",
    "AdaptiveSchedule",
    "DiscrepancyGatedSchedule",
    "LossTriggeredSchedule",
    "ReturnRatioSchedule",
    "GRANULARITIES",
    "PRESETS",
    "SCHEDULE_KINDS",
    "BetaSchedule",
    "CoefficientSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "MixingConfig",
    "MixingPolicy",
    "PiecewiseLinearSchedule",
    "StepSchedule",
    "build_schedule",
    "schedule_names",
]
