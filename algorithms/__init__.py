"""MixingDistillation(Runner) for rsl-rl-lib 3.0.1-3.3.x, 4.0.x, 5.4.2-5.5.x; MixingDAggerPPO for 5.4.2-5.5.x."""

from dagmix.algorithms.dagger_ppo import MixingDAggerPPO
from dagmix.algorithms.mixing_core import CHECKPOINT_KEY, MIXING_STATE_FORMAT_VERSION
from dagmix.algorithms.mixing_distillation import MixingDistillation
from dagmix.algorithms.runner import MixingDistillationRunner

__all__ = [
    "CHECKPOINT_KEY",
    "MIXING_STATE_FORMAT_VERSION",
    "MixingDAggerPPO",
    "MixingDistillation",
    "MixingDistillationRunner",
]
