"""Isaac Lab 3.0 config of MixingDAggerPPO: the configclasses reach rsl_rl's stock OnPolicyRunner as Isaac Lab does.

Needs Isaac Lab (skips without it); ``scripts/test_isaaclab.sh`` runs this file inside its Isaac Lab venv.
"""

from __future__ import annotations

import pytest
import torch
from helpers import make_env
from test_config_schema import _defaults

from dagmix.algorithms import compat
from dagmix.mixing.dagger_ppo_schema import DAGGER_PPO_KEYS, DAggerPPOSchema

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")


def _runner_cfg(isaaclab_cfg, **algorithm):
    from isaaclab_rl.rsl_rl import RslRlMLPModelCfg

    mlp = {"hidden_dims": [32, 32], "activation": "elu"}
    ppo = {"num_learning_epochs": 2, "num_mini_batches": 2, "learning_rate": 1e-3, "schedule": "fixed"}
    ppo.update(gamma=0.99, lam=0.95, entropy_coef=0.0, desired_kl=0.01, max_grad_norm=1.0, value_loss_coef=1.0)
    ppo.update(use_clipped_value_loss=True, clip_param=0.2)
    return isaaclab_cfg.RslRlMixingDAggerPPORunnerCfg(
        device="cpu",
        seed=1,
        num_steps_per_env=8,
        max_iterations=3,
        save_interval=1000,
        experiment_name="test",
        logger="tensorboard",
        obs_groups={"actor": ["policy"], "critic": ["teacher"], "teacher": ["teacher"]},
        actor=RslRlMLPModelCfg(
            **mlp, obs_normalization=True, distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=0.1)
        ),
        critic=RslRlMLPModelCfg(**mlp),
        teacher=RslRlMLPModelCfg(**mlp),  # matches tests/test_dagger_ppo.py's save_teacher
        algorithm=isaaclab_cfg.RslRlMixingDAggerPPOAlgorithmCfg(**{**ppo, **algorithm}),
    )


def _isaaclab_runner(cfg):
    """Build the runner exactly as ``isaaclab train`` does (deprecation handling, then ``create_rsl_rl_runner``)."""
    from isaaclab_rl.rsl_rl import check_rsl_rl_version, create_rsl_rl_runner, handle_deprecated_rsl_rl_cfg

    cfg = handle_deprecated_rsl_rl_cfg(cfg, check_rsl_rl_version())
    return create_rsl_rl_runner(make_env(num_envs=16, seed=cfg.seed), cfg, log_dir=None)


def _load_cfg(resume_optimizer_state: bool):
    from isaaclab_rl.entrypoints.backends.cli_args_rsl_rl import checkpoint_load_cfg

    return checkpoint_load_cfg(resume_optimizer_state, runner_class="OnPolicyRunner")


def test_stock_on_policy_runner_trains_from_the_configclasses(isaaclab, tmp_path):
    from test_dagger_ppo import save_teacher

    from dagmix.algorithms import MixingDAggerPPO

    teacher = save_teacher(tmp_path / "teacher.pt")
    mixing = isaaclab.MixingCfg(schedule="two_stage", phase1_iterations=1)
    cfg = _runner_cfg(
        isaaclab, imitation_coef=0.5, ppo_coef={"schedule": "step", "phase1_iterations": 2}, mixing=mixing
    )
    runner = _isaaclab_runner(cfg)
    assert type(runner).__name__ == "OnPolicyRunner" and isinstance(runner.alg, MixingDAggerPPO)
    # `isaaclab train --checkpoint TEACHER` with its default --resume_optimizer_state passes load_cfg=None
    assert _load_cfg(True) is None
    runner.load(teacher, load_cfg=_load_cfg(True), map_location="cpu")
    saved = torch.load(teacher, weights_only=True)["actor_state_dict"]
    assert all(torch.equal(v, runner.alg.teacher.state_dict()[k]) for k, v in saved.items())
    runner.learn(3)
    lr = runner.alg.lr_schedule  # the default under Isaac Lab's fixed rate: held for 0.67 of the run, then a cosine
    assert (lr.learning_rate_schedule, lr.min_learning_rate, lr.learning_rate_decay_start_fraction) == (
        "cosine",
        1e-4,
        0.67,
    )
    assert lr.learning_rate(1e-3, 2, 3) == 1e-3 and lr.learning_rate(1e-3, 3, 3) == pytest.approx(1e-4)
    assert runner.alg.coefficients_at(0) == {"beta": 1.0, "imitation_coef": 0.5, "ppo_coef": 1.0}
    assert runner.alg.coefficients_at(2) == {"beta": 0.0, "imitation_coef": 0.5, "ppo_coef": 0.0}
    assert runner.alg.last_metrics["Distillation/imitation_coef"] == 0.5


def test_no_resume_optimizer_state_loads_the_teacher_checkpoint_into_the_student(isaaclab, tmp_path):
    # the documented limitation: Isaac Lab's load_cfg for OnPolicyRunner names actor and critic, not the teacher
    from test_dagger_ppo import save_teacher

    teacher = save_teacher(tmp_path / "teacher.pt")
    runner = _isaaclab_runner(_runner_cfg(isaaclab))
    assert _load_cfg(False) == {"actor": True, "critic": True, "optimizer": False, "iteration": True, "rnd": True}
    with pytest.raises(RuntimeError, match="Missing key"):  # the student's layout differs from the teacher's
        runner.load(teacher, load_cfg=_load_cfg(False), map_location="cpu")
    assert not runner.alg.teacher_loaded
    with pytest.raises(ValueError, match="Teacher model parameters not loaded"):
        runner.learn(1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"imitation_loss": "l1"}, "imitation_loss='l1' is not one of 'mse', 'huber', 'gaussian_nll'"),
        ({"ppo_coef": -1.0}, r"ppo_coef=-1.0 must be a finite number >= 0"),
        ({"imitation_coef": {"schedule": "linear", "iters": 5}}, r"Unknown key\(s\) \['iters'\]"),
        ({"class_name": "PPO"}, "needs dagmix's algorithm, class_name='dagmix.algorithms:MixingDAggerPPO'"),
        ({"teacher_action_clip": 0.0}, "teacher_action_clip=0.0 must be a positive number"),
        (
            {"schedule": "adaptive", "learning_rate": 1e-3, "desired_kl": 0.01, "learning_rate_schedule": "cosine"},
            "set schedule='fixed' with a decaying learning_rate_schedule",
        ),
        (
            {"schedule": "fixed", "learning_rate": 1e-3, "learning_rate_schedule": "cosine", "min_learning_rate": 1e-2},
            "is above learning_rate=0.001",
        ),
    ],
)
def test_bad_values_raise_at_construction(isaaclab, kwargs, match):
    with pytest.raises(ValueError, match=match):
        isaaclab.RslRlMixingDAggerPPOAlgorithmCfg(**kwargs)


def test_symmetry_is_refused(isaaclab):
    from isaaclab_rl.rsl_rl import RslRlSymmetryCfg

    with pytest.raises(ValueError, match="symmetry_cfg is not supported"):
        isaaclab.RslRlMixingDAggerPPOAlgorithmCfg(symmetry_cfg=RslRlSymmetryCfg(use_data_augmentation=True))


def test_cartpole_entry_point_and_hydra_overrides(isaaclab, monkeypatch, tmp_path):
    from isaaclab_tasks.utils import resolve_task_config

    from dagmix.integrations import isaaclab_cartpole

    monkeypatch.setenv("DAGMIX_CACHE_DIR", str(tmp_path))
    isaaclab_cartpole.register_tasks()

    def resolve(*overrides):
        _, agent = resolve_task_config(
            isaaclab_cartpole.TASK_ID, "rsl_rl_dagger_ppo_cfg_entry_point", overrides=list(overrides)
        )
        return agent

    agent = resolve()
    assert agent.class_name == "OnPolicyRunner" and agent.algorithm.class_name == "dagmix.algorithms:MixingDAggerPPO"
    assert agent.obs_groups == {"actor": ["policy"], "critic": ["teacher"], "teacher": ["teacher"]}
    teacher_ppo = isaaclab_cartpole.DagmixCartpoleTeacherPPORunnerCfg()
    assert agent.teacher.to_dict() == teacher_ppo.actor.to_dict()
    # the hand-off: a distilled student loads into the actor, the teacher's PPO critic into the critic
    assert agent.actor.to_dict() == isaaclab_cartpole.DagmixCartpoleDistillationRunnerCfg().student.to_dict()
    assert agent.critic.to_dict() == teacher_ppo.critic.to_dict()
    assert agent.obs_groups["critic"] == teacher_ppo.obs_groups["critic"]
    # the recipe: every dagmix key at the schema's default (the schema is the one source), the teacher's PPO keys
    algorithm = agent.algorithm.to_dict()
    assert {k: algorithm[k] for k in DAGGER_PPO_KEYS} == _defaults(DAggerPPOSchema)
    ppo = {k: v for k, v in teacher_ppo.algorithm.to_dict().items() if k not in ("class_name", "schedule")}
    assert {k: algorithm[k] for k in ppo} == ppo and algorithm["schedule"] == "fixed"
    options = agent.algorithm.to_options()
    assert options.mixing.schedule == "student_only" and options.imitation_balance == "advisor"
    assert [options.imitation_coef.value(i) for i in (0, 120, 10_000)] == [1.0, 1.0, 1.0]
    assert [options.ppo_coef.value(i) for i in (0, 20, 10_000)] == [1.0, 1.0, 1.0]

    agent = resolve(
        "agent.algorithm.imitation_loss=huber",
        "agent.algorithm.mixing.schedule=two_stage",
        "agent.algorithm.mixing.phase1_iterations=5",
        "agent.algorithm.init_student=/runs/distilled/model_9.pt",
        "agent.algorithm.init_student_std=0.2",
    )
    options = agent.algorithm.to_options()
    assert options.imitation_loss == "huber" and options.mixing.schedule_params == {"phase1_iterations": 5}
    assert options.init_student == "/runs/distilled/model_9.pt" and options.init_student_std == 0.2
    agent = resolve("agent.algorithm.imitation_loss=l2")  # overrides skip __post_init__: validate() catches it
    with pytest.raises(ValueError, match="imitation_loss='l2'"):
        agent.algorithm.validate()
