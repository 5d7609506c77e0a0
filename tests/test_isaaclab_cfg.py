"""Isaac Lab integration, config level (fast).

Tests marked by the ``isaaclab`` fixture need Isaac Lab 3.0 and skip without it; ``scripts/test_isaaclab.sh`` runs
this file inside its Isaac Lab venv, so they execute in CI. The others run everywhere.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import make_runner

from dagmix.mixing.config import drop_unset, schedule_parameter_names
from dagmix.mixing.schedules import ConstantSchedule, LinearSchedule, StepSchedule

# the dict Isaac Lab's to_dict makes of RslRlMixingDistillationAlgorithmCfg().mixing: every field, unset ones None
UNSET_MIXING = {
    "schedule": None,
    "phase1_iterations": None,
    "beta": None,
    "start": None,
    "end": None,
    "iterations": None,
    "decay": None,
    "cutoff": None,
    "points": None,
    "threshold": None,
    "deadline": None,
    "patience": None,
    "step": None,
    "switch_back_threshold": None,
    "initial_beta": None,
    "gain": None,
    "probe_fraction": None,
    "smoothing": None,
    "min_beta": None,
    "monotone": None,
    "target": None,
    "granularity": "step",
    "assignment": "random",
    "seed": None,
}


def _cfg(isaaclab_cfg, **kwargs):
    base = {"num_learning_epochs": 1, "learning_rate": 1e-3, "gradient_length": 8}
    return isaaclab_cfg.RslRlMixingDistillationAlgorithmCfg(**{**base, **kwargs})


# ------------------------------------------------------------------------------------------ without Isaac Lab
def test_importing_dagmix_never_imports_isaaclab():
    code = (
        "import sys, dagmix, dagmix.algorithms, dagmix.envs, dagmix.cli, dagmix.integrations\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0].startswith('isaaclab'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_isaaclab_modules_without_isaaclab_say_how_to_install_it():
    # block Isaac Lab even where it is installed: None in sys.modules makes its import fail like a missing package
    for module in ("isaaclab_cfg", "isaaclab_cartpole"):
        code = f"import sys\nsys.modules['isaaclab'] = None\nimport dagmix.integrations.{module}\n"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0
        assert "ModuleNotFoundError" in proc.stderr
        assert "pip install 'dagmix[isaaclab]'" in proc.stderr
        assert "Python 3.12" in proc.stderr


def test_drop_unset_reads_the_configclass_dict_form():
    assert drop_unset(UNSET_MIXING) is None  # no schedule configured
    linear = {**UNSET_MIXING, "schedule": "linear", "iterations": 300}
    assert drop_unset(linear) == {
        "schedule": "linear",
        "iterations": 300,
        "granularity": "step",
        "assignment": "random",
        "seed": None,
    }
    with pytest.raises(ValueError, match=r"mixing sets iterations=300 but mixing.schedule is None"):
        drop_unset({**UNSET_MIXING, "iterations": 300})
    # unknown keys are still errors, also when None
    from dagmix.mixing.config import resolve_mixing

    with pytest.raises(ValueError, match="iteratons"):
        resolve_mixing({**linear, "iteratons": None}, False, 500)
    assert set(schedule_parameter_names()) == set(UNSET_MIXING) - {"schedule", "granularity", "assignment", "seed"}


@pytest.mark.parametrize(
    ("two_stage", "mixing", "expected"),
    [
        (True, UNSET_MIXING, StepSchedule),
        (False, UNSET_MIXING, ConstantSchedule),
        (False, {**UNSET_MIXING, "schedule": "linear", "iterations": 4}, LinearSchedule),
    ],
)
def test_the_algorithm_accepts_the_configclass_dict(tmp_path, teacher_path, two_stage, mixing, expected):
    algo = {"use_two_stage_training": two_stage, "phase1_iterations": 3, "mixing": mixing}
    r = make_runner(tmp_path, teacher_path, algo, runner="stock")
    assert type(r.alg.schedule) is expected
    if expected is StepSchedule:
        assert r.alg.schedule.phase1_iterations == 3
    if expected is LinearSchedule:
        assert r.alg.schedule.beta(2) == pytest.approx(0.5)


def test_stock_distillation_silently_ignores_the_seed_fields(tmp_path, teacher_path):
    # the migration pitfall the README warns about: rsl_rl's constructor swallows unknown keys
    from rsl_rl.algorithms import Distillation

    algo = {"class_name": "Distillation", "use_two_stage_training": True, "phase1_iterations": 3}
    r = make_runner(tmp_path, teacher_path, algo, runner="stock")
    assert type(r.alg) is Distillation
    assert not hasattr(r.alg, "schedule")


# ------------------------------------------------------------------------------------------ with Isaac Lab
def test_configclass_converts_to_the_dict_rsl_rl_receives(isaaclab, tmp_path, teacher_path):
    from isaaclab.utils import to_dict

    cfg = _cfg(isaaclab, use_two_stage_training=True, phase1_iterations=2)
    d = to_dict(cfg)
    assert d["class_name"] == "dagmix.algorithms:MixingDistillation"
    assert d["use_two_stage_training"] is True and d["phase1_iterations"] == 2
    assert d["mixing"] == UNSET_MIXING
    assert d["phase_console_output"] is True and d["teacher_action_clip"] is None
    assert isaaclab.RslRlMixingDistillationAlgorithmCfg().phase1_iterations == 500  # the two-stage patch's defaults
    assert isaaclab.RslRlMixingDistillationAlgorithmCfg().use_two_stage_training is False

    # rsl_rl's stock runner resolves class_name and passes the rest as kwargs
    from dagmix.algorithms import MixingDistillation

    r = make_runner(tmp_path, teacher_path, d, runner="stock")
    assert isinstance(r.alg, MixingDistillation)
    assert r.alg.schedule.describe() == StepSchedule(2).describe()
    assert r.alg.mixing_cfg == cfg.to_mixing_config()


def test_section_configclasses_mirror_the_algorithm_options(isaaclab):
    from dataclasses import asdict

    from isaaclab.utils import to_dict

    from dagmix.mixing.options import LossWeighting, ReplayConfig

    assert to_dict(isaaclab.LossWeightingCfg()) == asdict(LossWeighting())  # same fields, same defaults
    assert to_dict(isaaclab.ReplayCfg()) == asdict(ReplayConfig())
    with pytest.raises(ValueError, match=r"replay.iterations=-1 must be an int >= 0"):
        _cfg(isaaclab, replay=isaaclab.ReplayCfg(iterations=-1))
    with pytest.raises(ValueError, match=r"loss_weighting.teacher_driven=-1.0 must be a finite number >= 0"):
        _cfg(isaaclab, loss_weighting=isaaclab.LossWeightingCfg(teacher_driven=-1.0))


def test_mixing_subconfig_fields_are_the_schedule_parameters(isaaclab):
    from dataclasses import fields

    names = {f.name for f in fields(isaaclab.MixingCfg)}
    assert names - {"schedule", "granularity", "assignment", "seed"} == set(schedule_parameter_names())
    cfg = _cfg(isaaclab, mixing=isaaclab.MixingCfg(schedule="exponential", decay=0.9, granularity="episode"))
    mixing = cfg.to_mixing_config()
    assert mixing.schedule == "exponential" and mixing.schedule_params == {"decay": 0.9}
    assert mixing.granularity == "episode"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"phase1_iterations": -1}, r"phase1_iterations=-1 must be >= 0"),
        ({"phase1_iterations": 2.5}, r"phase1_iterations=2.5 must be an int"),
        ({"use_two_stage_training": "yes"}, r"use_two_stage_training='yes' must be True or False"),
        ({"class_name": "Distillation"}, r"class_name='Distillation'.*silently ignore"),
        ({"teacher_action_clip": 0.0}, r"teacher_action_clip=0.0 must be a positive number"),
        ({"mixing": {"schedule": "linar"}}, r"mixing.schedule='linar' is not one of .* Did you mean 'linear'"),
        ({"mixing": {"schedule": "linear", "granularity": "sometimes"}}, r"granularity='sometimes' is not one of"),
        ({"mixing": {"schedule": "constant", "beta": 1.5}}, r"beta=1.5 is outside \[0, 1\]"),
        ({"mixing": {"iterations": 10}}, r"mixing sets iterations=10 but mixing.schedule is None"),
        ({"use_two_stage_training": True, "mixing": {"schedule": "linear"}}, r"Both a non-empty 'mixing'"),
        ({"mixing": {"schedule": "quota"}}, r"mixing.schedule='quota' is not one of"),
    ],
)
def test_bad_values_raise_at_construction(isaaclab, kwargs, match):
    if "mixing" in kwargs:
        kwargs = {**kwargs, "mixing": isaaclab.MixingCfg(**kwargs["mixing"])}
    with pytest.raises(ValueError, match=match):
        _cfg(isaaclab, **kwargs)


def test_hydra_overrides_reach_the_algorithm(isaaclab, monkeypatch, tmp_path):
    from isaaclab_tasks.utils import resolve_task_config

    from dagmix.integrations import isaaclab_cartpole

    monkeypatch.setenv("DAGMIX_CACHE_DIR", str(tmp_path))
    isaaclab_cartpole.register_tasks()
    entry = "rsl_rl_distillation_cfg_entry_point"

    def resolve(*overrides):
        _, agent = resolve_task_config(isaaclab_cartpole.TASK_ID, entry, overrides=list(overrides))
        return agent

    agent = resolve("agent.algorithm.use_two_stage_training=True", "agent.algorithm.phase1_iterations=500")
    assert agent.class_name == "DistillationRunner"  # the only runner Isaac Lab accepts
    assert agent.algorithm.use_two_stage_training is True and agent.algorithm.phase1_iterations == 500
    assert agent.algorithm.to_mixing_config().build_schedule().describe() == StepSchedule(500).describe()

    agent = resolve("agent.algorithm.mixing.schedule=linear", "agent.algorithm.mixing.iterations=300")
    schedule = agent.algorithm.to_mixing_config().build_schedule()
    assert isinstance(schedule, LinearSchedule) and schedule.beta(150) == pytest.approx(0.5)

    agent = resolve("agent.algorithm.mixing.schedule=linar")  # overrides skip __post_init__: validate() catches it
    with pytest.raises(ValueError, match="Did you mean 'linear'"):
        agent.algorithm.validate()

    default = resolve()
    # the two-stage patch's default: stock behaviour
    assert default.algorithm.to_mixing_config().schedule == "student_only"


def test_cartpole_task_is_offline_and_splits_the_observations(isaaclab, monkeypatch, tmp_path):
    from pxr import Usd, UsdPhysics

    from dagmix.integrations import isaaclab_cartpole

    monkeypatch.setenv("DAGMIX_CACHE_DIR", str(tmp_path))
    env_cfg = isaaclab_cartpole.DagmixCartpoleEnvCfg()
    path = env_cfg.scene.robot.spawn.usd_path
    assert path.startswith(str(tmp_path)) and path.endswith(".usda")
    assert env_cfg.scene.ground is None  # the stock ground plane is a remote asset
    stage = Usd.Stage.Open(path)
    joints = {p.GetName(): p for p in stage.Traverse() if p.IsA(UsdPhysics.Joint)}
    assert UsdPhysics.PrismaticJoint(joints["slider_to_cart"]).GetAxisAttr().Get() == "X"
    assert UsdPhysics.RevoluteJoint(joints["cart_to_pole"]).GetAxisAttr().Get() == "Y"
    assert stage.GetDefaultPrim().HasAPI(UsdPhysics.ArticulationRootAPI)
    assert isaaclab_cartpole.DagmixCartpoleEnvCfg().scene.robot.spawn.usd_path == path  # written once, reused

    obs = env_cfg.observations
    assert set(vars(obs.teacher)) >= {"joint_pos_rel", "joint_vel_rel"}
    assert "joint_vel_rel" not in vars(obs.policy)  # the student sees no velocities
    teacher_agent = isaaclab_cartpole.DagmixCartpoleTeacherPPORunnerCfg()
    distill_agent = isaaclab_cartpole.DagmixCartpoleDistillationRunnerCfg()
    assert teacher_agent.obs_groups == {"actor": ["teacher"], "critic": ["teacher"]}
    assert distill_agent.obs_groups == {"student": ["policy"], "teacher": ["teacher"]}
    assert distill_agent.teacher.to_dict() == teacher_agent.actor.to_dict()  # loads from the PPO checkpoint


def test_algorithm_configclass_mirrors_the_learning_rate_and_averaging_keys(isaaclab):
    from dataclasses import asdict

    from isaaclab.utils import to_dict

    from dagmix.algorithms.ema import WeightAveragingConfig
    from dagmix.mixing.options import LearningRateScheduleConfig

    d = to_dict(isaaclab.RslRlMixingDistillationAlgorithmCfg())
    for schema in (LearningRateScheduleConfig(), WeightAveragingConfig()):
        for key, default in asdict(schema).items():
            assert d[key] == default, key  # same name, same default
    with pytest.raises(ValueError, match=r"ema_decay=1.5 must be a number in \(0, 1\)"):
        _cfg(isaaclab, ema_decay=1.5)
    with pytest.raises(ValueError, match=r"min_learning_rate=0.5 is above learning_rate"):
        _cfg(isaaclab, learning_rate_schedule="cosine", min_learning_rate=0.5)


def _student_built_as_isaaclab_does(isaaclab, student):
    """Build the model that Isaac Lab's train script builds from a distillation runner config with ``student``."""
    import torch
    from isaaclab_rl.rsl_rl import RslRlDistillationRunnerCfg, RslRlMLPModelCfg
    from isaaclab_rl.rsl_rl.utils import handle_deprecated_rsl_rl_cfg
    from rsl_rl.utils import resolve_callable
    from tensordict import TensorDict

    groups = {"student": ["policy"], "teacher": ["teacher"]}
    cfg = RslRlDistillationRunnerCfg(
        num_steps_per_env=8,
        max_iterations=2,
        save_interval=10,
        experiment_name="x",
        obs_groups=groups,
        student=student,
        teacher=RslRlMLPModelCfg(hidden_dims=[16], activation="elu"),
        algorithm=isaaclab.RslRlMixingDistillationAlgorithmCfg(learning_rate=1e-3, gradient_length=8),
    )
    section = handle_deprecated_rsl_rl_cfg(cfg, "5.5.1").to_dict()["student"]  # as Isaac Lab's train script does
    obs = TensorDict({"policy": torch.zeros(4, 5), "teacher": torch.zeros(4, 3)}, batch_size=[4])
    return resolve_callable(section.pop("class_name"))(obs, groups, "student", 2, **section)


def test_estimator_model_configclass_gives_the_student_rsl_rl_builds(isaaclab):
    from dagmix.mixing.estimator_schema import ESTIMATOR_KEYS

    student = isaaclab.RslRlEstimatorRNNModelCfg(
        hidden_dims=[16], activation="elu", rnn_type="gru", rnn_hidden_dim=8, rnn_num_layers=1
    )
    assert student.class_name == "dagmix.models:EstimatorRNNModel"
    assert {k: getattr(student, k) for k in ESTIMATOR_KEYS} == ESTIMATOR_KEYS  # the schema's fields and defaults
    student.estimator_rows, student.estimator_mode = [0, 2], "input"
    model = _student_built_as_isaaclab_does(isaaclab, student)
    assert type(model).__name__ == "EstimatorRNNModel"
    assert model.estimator_mode == "input" and model.estimator_rows == [0, 2] and model.estimate_dim == 2


def test_filter_model_configclass_gives_the_student_rsl_rl_builds(isaaclab):
    import torch

    from dagmix.mixing.estimator_schema import FILTER_KEYS

    student = isaaclab.RslRlFilterRNNModelCfg(
        hidden_dims=[16], activation="elu", rnn_type="gru", rnn_hidden_dim=8, rnn_num_layers=1
    )
    assert student.class_name == "dagmix.models:FilterRNNModel"
    assert {k: getattr(student, k) for k in FILTER_KEYS} == FILTER_KEYS  # the schema's field and default
    other = isaaclab.RslRlFilterRNNModelCfg(hidden_dims=[16], rnn_type="gru")
    other.filter_time_constants.append(80.0)
    assert student.filter_time_constants == FILTER_KEYS["filter_time_constants"]  # each config owns its list
    student.filter_time_constants = [3.0, 6.0]
    model = _student_built_as_isaaclab_does(isaaclab, student)
    assert type(model).__name__ == "FilterRNNModel"
    assert model.filter_time_constants == [3.0, 6.0]
    _, h, _ = model.rnn.rnn.run(torch.zeros(1, 4, 5), None)
    assert h.shape == (1, 4, 8 + 2 * 5 + 2)  # the GRU, 2 filters of 5 rows, their bias weights
