"""Checkpoint files: loaded with ``torch.load(weights_only=True)``, written atomically.

rsl_rl's runners load with ``weights_only=False`` (full unpickling: a checkpoint can run arbitrary code) and write
in place (a kill during a write leaves a half file). dagmix loads and saves through :func:`load_checkpoint` and
:func:`save_checkpoint` instead, and saves and restores a runner with :func:`save_runner` and
:func:`restore_runner` (:class:`~dagmix.algorithms.MixingDistillationRunner` and the ``dagmix`` command use them).
Nothing here reassigns ``torch.load`` / ``torch.save``: an upstream runner that calls them itself gets a stand-in
in its own module for one call (:func:`safe_torch_in`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import torch

UNSAFE_LOAD_HINT = "pass --unsafe_load on the command line, or unsafe_load=True in the API"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, or needs full unpickling without the opt-in."""


class UnsafeCheckpointError(CheckpointError):
    """A readable checkpoint that holds objects only full unpickling can create (refused without the opt-in)."""


def load_checkpoint(path: str | os.PathLike, map_location: Any = None, unsafe_load: bool = False) -> dict[str, Any]:
    """Load an rsl_rl / dagmix checkpoint dict with ``weights_only=True``.

    Args:
        path: The checkpoint file.
        map_location: As for ``torch.load``.
        unsafe_load: Unpickle fully (``weights_only=False``), which can execute code stored in the file; only for
            files from a trusted source. Prints a warning when used.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: the file is missing, a directory, empty, truncated, not a torch file or not a dict.
        UnsafeCheckpointError: the file needs full unpickling (the message names the first object it holds that is
            refused by ``weights_only``) and ``unsafe_load`` is False.
    """
    return _load(path, map_location, unsafe_load)


def _load(path: str | os.PathLike, map_location: Any, unsafe_load: bool, **torch_kwargs: Any) -> dict[str, Any]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint {path!r} does not exist.")
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint {path!r} is not a file (a directory?); pass the path of a .pt file.")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"Checkpoint {path!r} is empty (0 bytes): an interrupted save? Use another checkpoint.")
    if unsafe_load:
        warnings.warn(
            f"Loading {path!r} with full unpickling (unsafe_load): the file can run arbitrary code. Use this only "
            "for checkpoints from a trusted source.",
            stacklevel=3,
        )
    try:
        # weights_only: tensors, dicts, lists, numbers, strings, None: all that rsl_rl's checkpoints and dagmix's
        # ``checkpoint["dagmix"]`` entry (the mask generator's state as a uint8 tensor) hold
        loaded = torch.load(path, map_location=map_location, weights_only=not unsafe_load, **torch_kwargs)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files; all mean "not loadable"
        unsafe = None if unsafe_load else _unsafe_global(path, e)
        if unsafe:
            raise UnsafeCheckpointError(
                f"Checkpoint {path!r} holds {unsafe}, which needs full unpickling (weights_only=False) and "
                f"can run arbitrary code. If you trust the file, {UNSAFE_LOAD_HINT}."
            ) from None
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"Checkpoint {path!r} is not a readable torch checkpoint (truncated or corrupt?): {reason}"
        ) from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"Checkpoint {path!r} holds a {type(loaded).__name__}, not an rsl_rl checkpoint dict.")
    return loaded


def _unsafe_global(path: str, error: Exception) -> str | None:
    """Return the first global of ``path`` that weights_only loading refuses, or None if the file is just broken."""
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if finder is not None:
        try:
            names = list(finder(path))
        except Exception:  # noqa: BLE001 - not a zip checkpoint: broken, or the legacy format (read the message)
            names = []
        if names:
            return names[0]
    match = re.search(r"GLOBAL (\S+)", str(error))
    return match.group(1) if match else None


def state_dict_mismatch(error: Exception) -> str:
    """Return the gist of a ``load_state_dict`` error in one line: the first differing weight and both shapes.

    E.g. ``mlp.0.weight is (64, 14) in the checkpoint, (64, 16) in the model`` or ``missing weights: rnn.rnn...``.
    """
    text = str(error)
    size = re.search(
        r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) from "
        r"checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)",
        text,
    )
    if size:
        name, saved, model = size.groups()
        return f"{name} is ({saved}) in the checkpoint, ({model}) in the model"
    for label, what in (("Missing key(s)", "weights the checkpoint lacks"), ("Unexpected key(s)", "extra weights")):
        keys = re.search(re.escape(label) + r" in state_dict: ([^\n]*)", text)
        if keys:
            names = re.findall(r'"([^"]+)"', keys.group(1))  # the quoted keys, dots and all
            return f"{what}: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
    return " ".join(text.split())[:200]


MODEL_SECTIONS = ("obs_groups", "student", "teacher", "policy", "actor", "critic")
"""The train-config sections that decide the models' shapes (stored in ``checkpoint["dagmix"]["model"]``)."""


def model_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """Return the model part of an rsl_rl train config: ``obs_groups`` and the model sections it has.

    Distillation's ``student`` and ``teacher`` (or 3.x ``policy``), MixingDAggerPPO's ``actor``, ``critic`` and
    ``teacher``.

    Stored under ``checkpoint["dagmix"]["model"]`` so that eval and export rebuild the run's models from the file
    alone. Values are reduced to plain data (loadable with ``weights_only=True``): a class or function, e.g. a
    callable teacher's ``fn``, becomes its import path ``"module:qualname"``.
    """
    return {k: _plain(train_cfg[k]) for k in MODEL_SECTIONS if k in train_cfg}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return f"{value.__module__}:{value.__qualname__}"
    return repr(value)


def save_checkpoint(obj: Any, path: str | os.PathLike) -> None:
    """Write ``torch.save(obj)`` to ``path`` atomically: a temporary file in the same folder, fsync, ``os.replace``.

    A kill at any moment leaves either the previous file or the new one, never a half file.
    """
    _save(obj, path)


def _save(obj: Any, path: str | os.PathLike, **torch_kwargs: Any) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f, **torch_kwargs)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself (not possible on every OS / file system)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_runner(runner: Any, path: str | os.PathLike, infos: dict | None = None) -> None:
    """Write a runner's checkpoint as rsl_rl's runners lay it out (``alg.save()``, ``iter``, ``infos``), atomically."""
    saved = runner.alg.save()
    saved.update(iter=runner.current_learning_iteration, infos=infos)
    save_checkpoint(saved, path)


def restore_runner(runner: Any, loaded: dict[str, Any], load_cfg: dict | None = None, strict: bool = True) -> Any:
    """Load a checkpoint dict (read by :func:`load_checkpoint`) into a runner as rsl_rl's ``runner.load`` does.

    ``alg.load``; when it resumes training, the runner continues at the checkpoint's ``iter``. Returns its ``infos``.
    """
    if runner.alg.load(loaded, load_cfg, strict):
        runner.current_learning_iteration = loaded["iter"]
    return loaded.get("infos")


class _SafeTorch:
    """The ``torch`` of one upstream module, for one call: a path's ``load`` / ``save`` go through checkpoint_io.

    Everything else is torch's.
    """

    def __init__(self, unsafe_load: bool) -> None:
        self._unsafe_load = unsafe_load

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def load(self, f: Any, map_location: Any = None, weights_only: Any = None, **kwargs: Any) -> Any:
        """``torch.load`` with ``weights_only=True`` unless the runner's load was asked for ``unsafe_load``."""
        del weights_only  # the caller's choice (rsl_rl and mjlab pass False) is replaced by the safe one
        if isinstance(f, (str, os.PathLike)):
            return _load(f, map_location, self._unsafe_load, **kwargs)
        return torch.load(f, map_location=map_location, weights_only=not self._unsafe_load, **kwargs)

    def save(self, obj: Any, f: Any, **kwargs: Any) -> None:
        """``torch.save``, written atomically when ``f`` is a path."""
        if isinstance(f, (str, os.PathLike)):
            _save(obj, f, **kwargs)
        else:
            torch.save(obj, f, **kwargs)


@contextlib.contextmanager
def safe_torch_in(modules: Sequence[ModuleType], unsafe_load: bool = False) -> Iterator[None]:
    """Within the block, the name ``torch`` in each of ``modules`` loads safely and saves atomically.

    For an upstream runner that calls ``torch.load`` / ``torch.save`` itself (mjlab's ``load`` migrates legacy
    keys and restores its env state around ``torch.load(path, weights_only=False)``): only those modules' own
    reference is replaced, only for the block; ``torch.load`` / ``torch.save`` stay torch's everywhere else. A
    module that does not hold ``torch`` under that name is left alone. Not thread-safe (runners save and load
    from one thread).
    """
    patched = [m for m in modules if vars(m).get("torch") is torch]
    stand_in = _SafeTorch(unsafe_load)
    for module in patched:
        module.torch = stand_in
    try:
        yield
    finally:
        for module in patched:
            module.torch = torch
