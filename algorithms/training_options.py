"""Who-drove-aware loss weighting and bounded aggregation: declared in :mod:`dagmix.mixing.options`."""

from dagmix.mixing.options import LossWeighting, ReplayConfig

__all__ = ["LossWeighting", "ReplayConfig"]
