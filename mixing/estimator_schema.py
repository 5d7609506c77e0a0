"""The own keys of dagmix's student models, declared once: the CLI's overrides and the integrations' configs read them.

No torch or rsl_rl import here; the models (``dagmix.models:EstimatorRNNModel``, ``FilterRNNModel``) validate the
values when they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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

FILTER_CLASS_NAME = "dagmix.models:FilterRNNModel"
"""The ``class_name`` of a student (or actor) section that names the filtering model."""


@dataclass
class FilterSchema:
    """FilterRNNModel's keys beyond rsl_rl's RNNModel's (docs/estimator.md)."""

    filter_time_constants: list[float] = field(default_factory=lambda: [2.0, 5.0, 10.0, 20.0, 40.0])
    """The exponential filters' time constants (env steps, increasing, each >= 1), whose adjacent pairs give the
    observation's rates of change."""


FILTER_KEYS: dict[str, Any] = {f.name: f.default_factory() for f in fields(FilterSchema)}
"""Each key's default (FilterRNNModel's keys beyond rsl_rl's RNNModel's)."""

MODEL_CLASS_KEYS: dict[str, dict[str, Any]] = {ESTIMATOR_CLASS_NAME: ESTIMATOR_KEYS, FILTER_CLASS_NAME: FILTER_KEYS}
"""The keys that a model section gains when its ``class_name`` names one of dagmix's models."""
