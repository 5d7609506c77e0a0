"""The config reference page, ``docs/config.md``, generated from the schema's docstrings (no rsl_rl import).

Regenerate with ``python -m dagmix.mixing.reference > docs/config.md``; ``tests/test_config_schema.py`` fails when the
page is not current.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, Literal

from dagmix.mixing.dagger_ppo_schema import DAggerPPOSchema
from dagmix.mixing.options import LearningRateKeys, LossWeighting, ReplayConfig, WeightAveragingKeys
from dagmix.mixing.schema import AlgorithmSchema, MixingSchema, field_docs

PAGE: dict[str, type] = {
    "Top-level algorithm keys": AlgorithmSchema,
    "`mixing`": MixingSchema,
    "`loss_weighting`": LossWeighting,
    "`replay`": ReplayConfig,
    "Learning-rate schedule (top-level keys)": LearningRateKeys,
    "Weight averaging (top-level key)": WeightAveragingKeys,
    "MixingDAggerPPO (`dagmix.algorithms:MixingDAggerPPO`)": DAggerPPOSchema,
}
"""The sections of the page, in order: each shows the docstring of its class and a table of the fields it declares."""

DAGGER_PPO_NOTE = (
    "Its `mixing` section is the `mixing` above; the other sections and top-level keys above are MixingDistillation's "
    "only. rsl_rl's `PPO` keys (`learning_rate`, `schedule`, `clip_param`, `entropy_coef`, `num_mini_batches`, ...) "
    "pass through; `symmetry_cfg` is refused. Isaac Lab: `RslRlMixingDAggerPPOAlgorithmCfg`; mjlab: "
    "`DagmixDAggerPPOAlgorithmCfg`; CLI: `dagmix distill --algorithm dagger_ppo algorithm.<key>=value`. See "
    "docs/dagger_ppo.md."
)


def reference_markdown() -> str:
    """Return the config reference (``docs/config.md``), generated from the field docstrings of the schema."""
    lines = [
        "# Config reference",
        "",
        "<!-- generated from dagmix/mixing/ by `python -m dagmix.mixing.reference > docs/config.md`; "
        "tests/test_config_schema.py checks it is current -->",
        "",
        "The keys dagmix adds to rsl_rl's algorithm config. rsl_rl's own `Distillation` keys (`learning_rate`, "
        "`num_learning_epochs`, `gradient_length`, `max_grad_norm`, `loss_type`, `optimizer`, ...) pass through "
        "unchanged. The same keys are the fields of the Isaac Lab configclass (`agent.algorithm.<key>`), of the "
        "mjlab dataclass (`--agent.algorithm.<key>`) and the CLI's `algorithm.<key>=value` overrides. Unknown keys "
        "are an error, with a suggestion.",
    ]
    for title, cls in PAGE.items():
        paragraphs = [" ".join(p.split()) for p in inspect.cleandoc(cls.__doc__ or "").split("\n\n")]
        if cls is DAggerPPOSchema:
            paragraphs += [DAGGER_PPO_NOTE]
        lines += ["", f"## {title}", ""]
        for paragraph in paragraphs:
            lines += [paragraph, ""]
        lines += _table(cls)
    return "\n".join(lines).replace("``", "`") + "\n"


def _kind(hint: Any) -> str:
    """Return a field's type as the page shows it: ``'a' or 'b'`` for a Literal, ``int or None``, ``MixingSchema``."""
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _table(cls: type) -> list[str]:
    """Return the markdown table of the fields ``cls`` declares itself (key, type, default, docstring)."""
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    docs, hints, own = field_docs(cls), typing.get_type_hints(cls), cls.__dict__.get("__annotations__", {})
    for f in dataclasses.fields(cls):
        if f.name not in own:
            continue
        default = "see below" if f.default_factory is not dataclasses.MISSING else f"`{f.default!r}`"
        if f.name == "mixing" and cls is not AlgorithmSchema:
            default = "see `mixing`"
        lines.append(f"| `{f.name}` | {_kind(hints[f.name])} | {default} | {docs[f.name].replace('|', 'or')} |")
    return lines


if __name__ == "__main__":
    print(reference_markdown(), end="")
