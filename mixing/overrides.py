"""``key=value`` overrides of a train config (the ``dagmix`` command's), checked against it and dagmix's schema.

:func:`parse_value` and :func:`check_override` turn and check the text of one value (``dagmix.envs.make`` checks
env keys with them); :func:`apply_overrides` walks the train config.
"""

from __future__ import annotations

import ast
from dataclasses import fields
from typing import Any

from dagmix.mixing.dagger_ppo_schema import DAggerPPOSchema
from dagmix.mixing.estimator_schema import MODEL_CLASS_KEYS
from dagmix.mixing.names import check_keys, did_you_mean
from dagmix.mixing.schema import AlgorithmSchema, lookup

NUMBER_OR_SCHEDULE_KEYS = tuple(f"algorithm.{f.name}" for f in fields(DAggerPPOSchema) if "dict" in str(f.type))
"""MixingDAggerPPO's coefficients: a number or a schedule dict (validated when the algorithm is built)."""


def algorithm_schema(cfg: dict[str, Any]) -> type:
    """Return the schema class of the train config's algorithm (DAggerPPOSchema or MixingDistillation's)."""
    class_name = cfg.get("algorithm", {}).get("class_name", "")
    return DAggerPPOSchema if str(class_name).endswith(":MixingDAggerPPO") else AlgorithmSchema


def schema_default(parts: list[str], root: type = AlgorithmSchema) -> tuple[bool, Any]:
    """Return (True, default) if ``parts`` names a dagmix algorithm key of the schema (``algorithm.mixing.decay``)."""
    if len(parts) < 2 or parts[0] != "algorithm":
        return False, None
    return lookup(".".join(parts[1:]), root)


def apply_overrides(cfg: dict[str, Any], env_cfg: dict[str, Any], overrides: list[str]) -> None:
    """Apply ``key=value`` overrides in place: ``env.X`` to ``env_cfg``, anything else to the train ``cfg``.

    Train-config keys must exist in the config or, under ``algorithm``, in dagmix's schema
    (:mod:`dagmix.mixing.schema`: every dagmix key, validated when the algorithm is built); env keys are validated
    by ``dagmix.envs.make``. Values must have the type of the default they replace. Raises ValueError naming the key.
    """
    root = algorithm_schema(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"Override {item!r} is not of the form key=value (e.g. algorithm.learning_rate=5e-4).")
        key, text = item.split("=", 1)
        value = parse_value(text)
        if key.startswith("env."):
            env_cfg[key[4:]] = value  # checked against the env's config by dagmix.envs.make
            continue
        node: Any = cfg
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            if (
                isinstance(node, dict)
                and part not in node
                and isinstance(schema_default(parts[: depth + 1], root)[1], dict)
            ):
                node[part] = {}  # a dagmix config section the default config leaves out (e.g. loss_weighting)
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
                section = ".".join(parts[: depth + 1])
                raise ValueError(f"Unknown config key {key!r}: {section!r} is not a config section.")
            node = node[part]
        leaf = parts[-1]
        default = node.get(leaf)
        model_keys = MODEL_CLASS_KEYS.get(str(node.get("class_name", "")), {})
        if leaf not in node and leaf in model_keys:
            default = model_keys[leaf]  # a key of the model section's class (validated when it is built)
        elif leaf not in node:
            known, default = schema_default(parts, root)
            section_known, section = schema_default(parts[:-1], root)
            if not known and section_known and isinstance(section, dict):  # a dagmix section: name its keys
                check_keys(".".join(parts[:-1]), [leaf], list(section))
            if not known:
                raise ValueError(
                    f"Unknown config key {key!r}; keys here: {', '.join(node)}." + did_you_mean(leaf, node)
                )
        if key in NUMBER_OR_SCHEDULE_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
            node[leaf] = float(value)  # a constant coefficient instead of the default schedule dict
            continue
        if key in NUMBER_OR_SCHEDULE_KEYS and isinstance(value, dict):
            node[leaf] = value  # a schedule dict instead of a number (validated when the algorithm is built)
            continue
        if key in NUMBER_OR_SCHEDULE_KEYS and value is not None:
            raise ValueError(
                f"{key}={text} is neither a number nor a schedule dict; e.g. {key}=0.5 or "
                f"{key}=\"{{'schedule': 'linear', 'start': 1.0, 'end': 0.0, 'iterations': 100}}\"."
            )
        node[leaf] = check_override(key, value, default, text)


def parse_value(text: str) -> Any:
    """Parse an override value: Python literals (numbers, True/False/None, lists), else the plain string."""
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_override(key: str, value: Any, default: Any, text: str | None = None) -> Any:
    """Return ``value`` checked against the type of the ``default`` it replaces; raise ValueError naming ``key``.

    None is always accepted (optional settings); a string default takes the raw text (``run_name=2024``).
    """
    shown = text if text is not None else repr(value)
    if value is None or default is None:
        return value
    if isinstance(default, str):
        return text if text is not None else value
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok, kind = isinstance(value, (list, tuple)), "a list such as [1, 2]"
    elif isinstance(default, dict):
        ok, kind = isinstance(value, dict), "a dict such as {'a': 1}"
    else:
        return value
    if not ok:
        raise ValueError(f"{key}={shown} is not {kind} (the default is {default!r}).")
    return value
