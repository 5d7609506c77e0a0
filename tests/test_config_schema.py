"""The one config schema (dagmix.mixing.schema) against every front end: a drift in any of them fails here."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import pathlib
import typing

import pytest

from dagmix.mixing import reference, schema
from dagmix.mixing.config import schedule_parameter_names
from dagmix.mixing.dagger_ppo_schema import DAGGER_PPO_KEYS, IMITATION_LOSSES, DAggerPPOSchema, validate_dagger_ppo
from dagmix.mixing.schema import SECTIONS, AlgorithmSchema, MixingSchema, field_docs, schema_paths

ROOT = pathlib.Path(schema.__file__).resolve().parents[1]
OWN_MIXING_KEYS = {"schedule", "granularity", "assignment", "seed"}


def _defaults(cls):
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def test_mixing_schema_has_one_field_per_schedule_parameter():
    declared = {f.name for f in dataclasses.fields(MixingSchema)} - OWN_MIXING_KEYS
    assert declared == set(schedule_parameter_names())  # the kinds' Literal is built from the registry itself


ALL_SECTIONS = {**SECTIONS, "dagger_ppo": DAggerPPOSchema}


@pytest.mark.parametrize("section", list(ALL_SECTIONS))
def test_every_field_has_a_docstring(section):
    cls = ALL_SECTIONS[section]
    docs = field_docs(cls)
    assert [f.name for f in dataclasses.fields(cls)] == list(docs), section
    assert all(len(d) > 10 for d in docs.values())


def test_python_dict_front_end_accepts_every_key():
    from dagmix.algorithms.mixing_distillation import MixingDistillation

    params = inspect.signature(MixingDistillation.__init__).parameters
    assert set(schema.ALGORITHM_KEYS) <= set(params)  # every key is an argument of the algorithm
    for key in schema.ALGORITHM_KEYS:
        assert params[key].default == _defaults(AlgorithmSchema)[key] or key in ("mixing", "loss_weighting", "replay")
    options = schema.validate(dataclasses.asdict(AlgorithmSchema()))
    assert options.mixing.schedule == "student_only"
    with pytest.raises(ValueError, match="did you mean 'ema_decay'"):
        schema.validate({"ema_decy": 0.9})


def test_dagger_ppo_python_dict_front_end_accepts_every_key():
    from dagmix.algorithms.dagger_ppo import MixingDAggerPPO

    params = inspect.signature(MixingDAggerPPO.__init__).parameters
    own = [p for p in params if p not in ("self", "actor", "critic", "storage", "teacher", "kwargs")]
    assert own == list(DAGGER_PPO_KEYS)  # the algorithm's own arguments are exactly the schema's keys, in order
    defaults = _defaults(DAggerPPOSchema)
    for key in DAGGER_PPO_KEYS:
        assert params[key].default == defaults[key] or key == "mixing", key
    hints = typing.get_type_hints(DAggerPPOSchema)
    assert typing.get_args(hints["imitation_loss"]) == IMITATION_LOSSES
    options = validate_dagger_ppo(dataclasses.asdict(DAggerPPOSchema()))  # configclass form: every field, None unset
    assert options.mixing.schedule == "student_only" and options.imitation_coef.value(7) == 1.0
    assert options.imitation_loss == "mse" and options.phase_console_output is True
    sched = {"schedule": "linear", "start": 1.0, "end": 0.0, "iterations": 4, "scale": 2.0}
    assert validate_dagger_ppo({"imitation_coef": sched, "ppo_coef": 0}).imitation_coef.value(2) == 1.0
    with pytest.raises(ValueError, match="Did you mean 'imitation_coef'"):
        validate_dagger_ppo({"imitation_coeff": 1.0})
    with pytest.raises(ValueError, match="imitation_loss='l1' is not one of 'mse', 'huber', 'gaussian_nll'"):
        validate_dagger_ppo({"imitation_loss": "l1"})
    with pytest.raises(ValueError, match="is adaptive"):
        validate_dagger_ppo({"mixing": {"schedule": "return_ratio", "granularity": "episode"}})
    with pytest.raises(ValueError, match="init_student=3 must be a checkpoint path"):
        validate_dagger_ppo({"init_student": 3})


@pytest.mark.parametrize("validator", [schema.validate, validate_dagger_ppo], ids=["distillation", "dagger_ppo"])
@pytest.mark.parametrize("cfg", [None, [], "mixing", 3])
def test_a_config_that_is_not_a_dict_is_the_documented_value_error(validator, cfg):
    with pytest.raises(ValueError, match=r"takes a dict of algorithm keys .*got") as info:
        validator(cfg)
    assert "'m'" not in str(info.value)  # not "Unknown algorithm key 'm'" from iterating a string
    assert validator({}).mixing.schedule == "student_only"  # the empty dict: the defaults


@pytest.mark.parametrize("validator", [schema.validate, validate_dagger_ppo], ids=["distillation", "dagger_ppo"])
@pytest.mark.parametrize("seed", [2**63, 2**70, -(2**63) - 1])
def test_a_mixing_seed_beyond_64_bits_is_refused_at_validation(validator, seed):
    with pytest.raises(ValueError, match=r"mixing\.seed=.* does not fit 64 bits"):
        validator({"mixing": {"schedule": "constant", "beta": 0.5, "seed": seed}})
    for fits in (2**63 - 1, -(2**63)):
        assert validator({"mixing": {"schedule": "constant", "beta": 0.5, "seed": fits}}).mixing.seed == fits


def _assert_cli_sets(cfg, path):
    """``algorithm.<path>=None`` on the command line sets that key of ``cfg`` (None: accepted for every key)."""
    from dagmix.mixing.overrides import apply_overrides

    apply_overrides(cfg, {}, [f"algorithm.{path}=None"])
    node = cfg["algorithm"]
    for part in path.split(".")[:-1]:
        node = node[part]
    assert path.split(".")[-1] in node and node[path.split(".")[-1]] is None


@pytest.mark.parametrize("path", schema_paths(DAggerPPOSchema))
def test_cli_dagger_ppo_front_end_reaches_every_key(path):
    from dagmix.envs.task_configs import dagger_ppo_train_cfg

    _assert_cli_sets(dagger_ppo_train_cfg("quadcopter"), path)


def test_cli_dagger_ppo_front_end_types_and_refuses_distillation_keys():
    from dagmix.envs.task_configs import dagger_ppo_train_cfg
    from dagmix.mixing.overrides import apply_overrides

    cfg = dagger_ppo_train_cfg("quadcopter")
    overrides = ["algorithm.imitation_coef=0.5", "algorithm.ppo_coef={'schedule': 'step', 'phase1_iterations': 9}"]
    apply_overrides(cfg, {}, [*overrides, "algorithm.imitation_loss=huber", "algorithm.init_student=s.pt"])
    algo = cfg["algorithm"]
    assert algo["imitation_coef"] == 0.5 and algo["ppo_coef"] == {"schedule": "step", "phase1_iterations": 9}
    assert algo["imitation_loss"] == "huber" and algo["init_student"] == "s.pt"
    own = {k: algo[k] for k in DAGGER_PPO_KEYS if k in algo}
    assert validate_dagger_ppo(own).ppo_coef.value(9) == 0.0  # what the CLI built is valid for the algorithm
    with pytest.raises(ValueError, match="'algorithm.replay' is not a config section"):
        apply_overrides(cfg, {}, ["algorithm.replay.iterations=3"])  # a MixingDistillation-only section
    with pytest.raises(ValueError, match="phase_console_output=1 is not True or False"):
        apply_overrides(cfg, {}, ["algorithm.phase_console_output=1"])


@pytest.mark.parametrize("path", schema_paths())
def test_cli_front_end_reaches_every_key(path):
    from dagmix.envs.task_configs import distill_train_cfg

    _assert_cli_sets(distill_train_cfg("quadcopter"), path)


def test_cli_front_end_checks_types_and_suggests():
    from dagmix.envs.task_configs import distill_train_cfg
    from dagmix.mixing.overrides import apply_overrides

    cfg = distill_train_cfg("quadcopter")
    apply_overrides(cfg, {}, ["algorithm.loss_weighting.student_driven=2.0", "algorithm.mixing.decay=0.9"])
    assert cfg["algorithm"]["loss_weighting"] == {"student_driven": 2.0}
    with pytest.raises(ValueError, match=r"replay.iterations=x is not an integer"):
        apply_overrides(cfg, {}, ["algorithm.replay.iterations=x"])
    with pytest.raises(ValueError, match="Did you mean 'ema_decay'"):
        apply_overrides(cfg, {}, ["algorithm.ema_decy=0.9"])


# ---------------------------------------------------------------------------------------------- Isaac Lab, mjlab
ISAACLAB_OVERRIDES = {  # fields a front end sets visibly to another default than the schema's
    "RslRlMixingDistillationAlgorithmCfg": {"use_two_stage_training", "phase1_iterations", "mixing"},
}
ISAACLAB_SECTIONS = {"MixingCfg": "MixingSchema", "LossWeightingCfg": "LossWeighting", "ReplayCfg": "ReplayConfig"}
MJLAB_OVERRIDES = {"MixingCfg": {"schedule", "phase1_iterations"}, "DagmixDistillationAlgorithmCfg": {"mixing"}}


def _classes(path):
    tree = ast.parse((ROOT / path).read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _own_fields(node):
    return {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def test_isaaclab_configclasses_derive_from_the_schema_source():
    classes = _classes("integrations/isaaclab_cfg.py")
    for name, base in ISAACLAB_SECTIONS.items():
        assert base in [b.id for b in classes[name].bases if isinstance(b, ast.Name)], name
        assert _own_fields(classes[name]) == set(), name  # every field comes from the schema
    alg = classes["RslRlMixingDistillationAlgorithmCfg"]
    assert "AlgorithmSchema" in [b.id for b in alg.bases if isinstance(b, ast.Name)]
    dagmix_fields = _own_fields(alg) & set(schema.ALGORITHM_KEYS)
    assert dagmix_fields <= ISAACLAB_OVERRIDES["RslRlMixingDistillationAlgorithmCfg"] | {"loss_weighting", "replay"}


@pytest.mark.skipif(importlib.util.find_spec("isaaclab") is None, reason="needs Isaac Lab 3.0")
def test_isaaclab_configclasses_hold_every_schema_field():
    from isaaclab.utils import to_dict

    from dagmix.integrations import isaaclab_cfg

    d = to_dict(isaaclab_cfg.RslRlMixingDistillationAlgorithmCfg())
    for key, default in _defaults(AlgorithmSchema).items():
        if key not in ISAACLAB_OVERRIDES["RslRlMixingDistillationAlgorithmCfg"] - {"mixing"}:
            assert d[key] == default, key
    assert d["mixing"] == _defaults(MixingSchema)


def test_mjlab_dataclasses_derive_from_the_schema_source():
    classes = _classes("integrations/mjlab_tasks.py")
    assert [b.id for b in classes["MixingCfg"].bases] == ["MixingSchema"]
    assert _own_fields(classes["MixingCfg"]) == MJLAB_OVERRIDES["MixingCfg"]
    alg = classes["DagmixDistillationAlgorithmCfg"]
    assert [b.id for b in alg.bases] == ["AlgorithmSchema"]
    assert _own_fields(alg) & set(schema.ALGORITHM_KEYS) == MJLAB_OVERRIDES["DagmixDistillationAlgorithmCfg"]


@pytest.mark.skipif(importlib.util.find_spec("mjlab") is None, reason="needs mjlab")
def test_mjlab_dataclasses_hold_every_schema_field():
    from dagmix.integrations.mjlab_tasks import DagmixDistillationAlgorithmCfg, mixing_dict

    d = dataclasses.asdict(DagmixDistillationAlgorithmCfg())
    for key, default in _defaults(AlgorithmSchema).items():
        if key != "mixing":
            assert d[key] == default, key
    assert set(d["mixing"]) == set(_defaults(MixingSchema))
    options = schema.validate({**{k: d[k] for k in schema.ALGORITHM_KEYS}, "mixing": mixing_dict(d["mixing"])})
    assert options.mixing.schedule == "two_stage" and options.mixing.schedule_params == {"phase1_iterations": 100}


def test_docs_config_reference_is_current():
    current = (ROOT / "docs" / "config.md").read_text()
    assert current == reference.reference_markdown(), "regenerate: python -m dagmix.mixing.reference > docs/config.md"


# ---------------------------------------------------------------------------------------------- MixingDAggerPPO
MJLAB_DAGGER_OVERRIDES = {"imitation_coef", "ppo_coef"}  # tyro cannot parse float | dict: a number on the CLI


def test_dagger_ppo_front_ends_derive_from_the_schema_source():
    alg = _classes("integrations/isaaclab_cfg.py")["RslRlMixingDAggerPPOAlgorithmCfg"]
    assert [b.id for b in alg.bases] == ["RslRlPpoAlgorithmCfg", "DAggerPPOSchema"]
    assert _own_fields(alg) & set(DAGGER_PPO_KEYS) == {"mixing"}  # the configclass form of the mixing section
    alg = _classes("integrations/mjlab_tasks.py")["DagmixDAggerPPOAlgorithmCfg"]
    assert [b.id for b in alg.bases] == ["RslRlPpoAlgorithmCfg", "DAggerPPOSchema"]
    assert _own_fields(alg) & set(DAGGER_PPO_KEYS) == MJLAB_DAGGER_OVERRIDES


@pytest.mark.skipif(importlib.util.find_spec("isaaclab") is None, reason="needs Isaac Lab 3.0")
def test_isaaclab_dagger_ppo_configclass_holds_every_schema_field():
    from isaaclab.utils import to_dict

    from dagmix.integrations import isaaclab_cfg

    d = to_dict(isaaclab_cfg.RslRlMixingDAggerPPOAlgorithmCfg())
    assert {k: d[k] for k in DAGGER_PPO_KEYS} == _defaults(DAggerPPOSchema)
    assert d["class_name"] == "dagmix.algorithms:MixingDAggerPPO"


@pytest.mark.skipif(importlib.util.find_spec("mjlab") is None, reason="needs mjlab")
def test_mjlab_dagger_ppo_dataclass_holds_every_schema_field():
    from dagmix.integrations.mjlab_tasks import DagmixDAggerPPOAlgorithmCfg, DagmixDAggerPPORunnerCfg

    d = dataclasses.asdict(DagmixDAggerPPORunnerCfg())
    assert {k: d["algorithm"][k] for k in DAGGER_PPO_KEYS} == _defaults(DAggerPPOSchema)
    assert d["algorithm"]["class_name"] == "dagmix.algorithms:MixingDAggerPPO" and "teacher" in d
    options = validate_dagger_ppo({k: d["algorithm"][k] for k in DAGGER_PPO_KEYS})
    assert options.mixing.schedule == "student_only"
    sched = {"schedule": "step", "phase1_iterations": 5}
    cfg = dataclasses.asdict(DagmixDAggerPPOAlgorithmCfg(ppo_coef=sched))  # a schedule dict, set in Python
    assert validate_dagger_ppo({k: cfg[k] for k in DAGGER_PPO_KEYS}).ppo_coef.value(5) == 0.0


def test_the_quadcopter_averages_with_decay_0_99_and_the_thrown_task_keeps_0_9():
    from dagmix.envs.task_configs import distill_train_cfg

    # measured: benchmarks/RESULTS.md, "A student with a velocity estimate"; the thrown task's table used 0.9
    assert distill_train_cfg("quadcopter")["algorithm"]["ema_decay"] == 0.99
    assert distill_train_cfg("quadcopter_thrown")["algorithm"]["ema_decay"] == 0.9


def test_the_quadcopter_student_is_a_128_unit_gru_and_the_dagger_ppo_actor_matches_every_task_student():
    from dagmix.envs.task_configs import dagger_ppo_train_cfg, distill_train_cfg

    # measured: benchmarks/RESULTS.md, "The demo in five minutes" (256 units: one override away, "Stable students")
    assert distill_train_cfg("quadcopter")["student"]["rnn_hidden_dim"] == 128  # the demo's: five minutes
    assert distill_train_cfg("quadcopter_thrown")["student"]["rnn_hidden_dim"] == 128
    for task in ("quadcopter", "quadcopter_thrown"):  # --init_student loads a distilled student into the actor
        student, actor = distill_train_cfg(task)["student"], dagger_ppo_train_cfg(task)["actor"]
        assert {k: v for k, v in actor.items() if k.startswith("rnn_")} == {
            k: v for k, v in student.items() if k.startswith("rnn_")
        }
