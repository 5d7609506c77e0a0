"""MixingDistillation and MixingDistillationRunner for rsl-rl-lib 5.x."""

from dagmix.algorithms.mixing_distillation import CHECKPOINT_KEY, MIXING_STATE_FORMAT_VERSION, MixingDistillation
from dagmix.algorithms.runner import MixingDistillationRunner

__all__ = ["CHECKPOINT_KEY", "MIXING_STATE_FORMAT_VERSION", "MixingDistillation", "MixingDistillationRunner"]
