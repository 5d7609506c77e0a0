"""MixingDistillationRunner: rsl_rl's DistillationRunner plus conveniences; the algorithm works without it."""

from __future__ import annotations

from typing import Any

from rsl_rl.runners import DistillationRunner

from dagmix.algorithms import compat
from dagmix.algorithms.mixing_distillation import MixingDistillation

DEFAULT_CLASS_NAME = "dagmix.algorithms:MixingDistillation"


class MixingDistillationRunner(compat.RunnerMixin, DistillationRunner):
    """A DistillationRunner that defaults the algorithm to MixingDistillation and tells it the exact run length."""

    alg: MixingDistillation

    def __init__(self, env: Any, train_cfg: dict, log_dir: str | None = None, device: str = "cpu") -> None:
        """Construct like rsl_rl's runner; ``algorithm.class_name`` defaults to MixingDistillation.

        Raises:
            ValueError: if ``algorithm.class_name`` names a class that is not a MixingDistillation.
        """
        for key in ("num_steps_per_env", "save_interval"):  # rsl_rl fails on these only after an iteration
            value = train_cfg.get(key, 1)  # save_interval is read only when a log_dir is given
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} must be an integer >= 1.")
        if "class_name" not in train_cfg.get("algorithm", {}):  # default it without touching the user's dict
            train_cfg = {**train_cfg, "algorithm": {**train_cfg.get("algorithm", {}), "class_name": DEFAULT_CLASS_NAME}}
        super().__init__(env, train_cfg, log_dir, device)
        if not isinstance(self.alg, MixingDistillation):
            raise ValueError(
                f"MixingDistillationRunner needs algorithm.class_name={DEFAULT_CLASS_NAME!r} (or a subclass), "
                f"got {type(self.alg).__name__}."
            )

    def learn(self, num_learning_iterations: int, init_at_random_ep_len: bool = False) -> None:
        """Run ``num_learning_iterations`` iterations from ``current_learning_iteration`` (as rsl_rl numbers them)."""
        if isinstance(num_learning_iterations, bool) or not isinstance(num_learning_iterations, int):
            raise ValueError(f"num_learning_iterations={num_learning_iterations!r} must be an int.")
        if num_learning_iterations < 0:
            raise ValueError(f"num_learning_iterations={num_learning_iterations} must be >= 0.")
        self.alg.sync_iteration(self.current_learning_iteration, num_learning_iterations)
        super().learn(num_learning_iterations, init_at_random_ep_len)

    def phase_info(self) -> dict[str, Any]:
        """Return the algorithm's current phase, iteration, beta and schedule."""
        return self.alg.get_training_phase_info()
