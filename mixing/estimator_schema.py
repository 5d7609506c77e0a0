"""EstimatorRNNModel's own keys, declared once: the CLI's overrides, the Isaac Lab and mjlab configs read them.

No torch or rsl_rl import here; the model (``dagmix.models:EstimatorRNNModel``) validates the values when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

ESTIMATOR_CLASS_NAME = "dagmix.models:EstimatorRNNModel"
"""The ``class_name`` of a student (or actor) section that names the estimating model."""
ESTIMATOR_MODES = ("auxiliary", "input")
"""The values of ``estimator_mode``."""


@dataclass
class EstimatorSchema:
    """EstimatorRNNModel's keys beyond rsl_rl's RNNModel's (docs/estimator.md)."""

    estimator_obs_set: str = "teacher"
    """The observation set to estimate (its groups, concatenated); by default the teacher's."""

    estimator_rows: list[int] | None = None
    """Which rows of that set to estimate (0-based); None: all of them."""

    estimator_coef: float = 1.0
    """Weight of the head's mean squared error (targets normalised by running statistics) beside the algorithm's
    loss; > 0."""

    estimator_mode: Literal["auxiliary", "input"] = "auxiliary"
    """``auxiliary``: the head reads the policy's own RNN; ``input``: a separate estimator GRU, trained by the head's
    loss alone, whose detached estimate the policy's GRU reads beside the observation (GRU only)."""

    estimator_hidden_dim: int | None = None
    """The estimator GRU's units in mode ``input``; None: the policy's ``rnn_hidden_dim``."""


ESTIMATOR_KEYS: dict[str, Any] = {f.name: f.default for f in fields(EstimatorSchema)}
"""Each key's default."""
