"""Per-iteration statistics: named slots gathered into one tensor, one all-reduce and one host read."""

from __future__ import annotations

import torch


class IterationStats:
    """Collects the iteration's device-side sums under names; :meth:`read` returns them as Python floats.

    Every part is summed over ranks in multi-GPU runs (so every rank takes the same decisions) with a single
    all-reduce, and read to the host with a single ``tolist()``: the only device-to-host read of the iteration.
    """

    def __init__(self, device: str | torch.device) -> None:
        self.device = device
        self._parts: list[torch.Tensor] = []
        self._slots: dict[str, slice] = {}
        self._size = 0

    def add(self, name: str, value: torch.Tensor | float) -> None:
        """Add a slot: a tensor (flattened, float32, on the device) or a host number."""
        if name in self._slots:
            raise ValueError(f"IterationStats: slot {name!r} was added twice.")
        if isinstance(value, torch.Tensor):
            part = value.detach().reshape(-1).float()
        else:
            part = torch.full((1,), float(value), device=self.device)
        self._slots[name] = slice(self._size, self._size + part.numel())
        self._size += part.numel()
        self._parts.append(part)

    def read(self, all_reduce: bool = False) -> dict[str, list[float]]:
        """Sum over ranks if ``all_reduce``, read to the host once, and return each slot's values by name."""
        vec = torch.cat(self._parts)
        if all_reduce and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(vec)
        values = vec.tolist()
        return {name: values[s] for name, s in self._slots.items()}
