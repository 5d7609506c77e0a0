"""An offline Isaac Lab 3.0 task for dagmix: cartpole whose teacher sees velocities and whose student does not.

Register it for ``isaaclab train`` with ``--external_callback dagmix.integrations.isaaclab_cartpole.register_tasks``.
The task ``Dagmix-Cartpole`` is Isaac Lab's manager-based cartpole with

- the cartpole USD authored in code (:mod:`dagmix.integrations.cartpole_usd`) and no ground plane, so nothing is
  downloaded from the asset server;
- observation groups ``teacher`` (privileged: joint positions and velocities) and ``policy`` (the student: joint
  positions only; a GRU student recovers the velocities from history);
- agents: ``rsl_rl_cfg_entry_point`` (default) trains the teacher with PPO on ``teacher``;
  ``rsl_rl_distillation_cfg_entry_point`` distills it into the student with dagmix's MixingDistillation;
  ``rsl_rl_dagger_ppo_cfg_entry_point`` trains the student with dagmix's MixingDAggerPPO (teacher-guided RL at the
  recipe's defaults, e.g. from a distilled student with ``agent.algorithm.init_student=...``) under rsl_rl's stock
  ``OnPolicyRunner``.
"""

from __future__ import annotations

from typing import Any

try:
    from isaaclab.envs import mdp
    from isaaclab.managers import ObservationGroupCfg, ObservationTermCfg
    from isaaclab.utils import configclass, replace
    from isaaclab_rl.rsl_rl import RslRlDistillationRunnerCfg, RslRlMLPModelCfg, RslRlRNNModelCfg
    from isaaclab_tasks.core.cartpole.agents.rsl_rl_ppo_cfg import CartpolePPORunnerCfg
    from isaaclab_tasks.core.cartpole.cartpole_manager_env_cfg import CartpoleEnvCfg, CartpoleSceneCfg
except ModuleNotFoundError as err:
    if err.name is None or not err.name.split(".")[0].startswith("isaaclab"):
        raise
    from dagmix.integrations.isaaclab_cfg import INSTALL_HINT

    raise ModuleNotFoundError(INSTALL_HINT.replace("isaaclab_cfg", "isaaclab_cartpole"), name=err.name) from err

from dagmix.integrations.cartpole_usd import cartpole_usd_path
from dagmix.integrations.isaaclab_cfg import (
    RslRlMixingDAggerPPOAlgorithmCfg,
    RslRlMixingDAggerPPORunnerCfg,
    RslRlMixingDistillationAlgorithmCfg,
)

TASK_ID = "Dagmix-Cartpole"
"""The gym id registered by :func:`register_tasks`."""


def register_tasks() -> Any:
    """Register dagmix's Isaac Lab tasks with gymnasium; the ``--external_callback`` of ``isaaclab train``.

    Returns:
        None: Isaac Lab reads the return value as "the arguments the callback consumed"; None means none.
    """
    import gymnasium as gym

    if TASK_ID not in gym.registry:
        gym.register(
            id=TASK_ID,
            entry_point="isaaclab.envs:ManagerBasedRLEnv",
            disable_env_checker=True,
            kwargs={
                "env_cfg_entry_point": f"{__name__}:DagmixCartpoleEnvCfg",
                "rsl_rl_cfg_entry_point": f"{__name__}:DagmixCartpoleTeacherPPORunnerCfg",
                "rsl_rl_distillation_cfg_entry_point": f"{__name__}:DagmixCartpoleDistillationRunnerCfg",
                "rsl_rl_dagger_ppo_cfg_entry_point": f"{__name__}:DagmixCartpoleDAggerPPORunnerCfg",
                "default_agent": "rsl_rl",
            },
        )
    return None


# ---------------------------------------------------------------------------------------------------- environment
@configclass
class DagmixCartpoleSceneCfg(CartpoleSceneCfg):
    """Isaac Lab's cartpole scene without the ground plane (a remote asset the cartpole never touches)."""

    ground = None


@configclass
class DagmixCartpoleObservationsCfg:
    """The student's and the teacher's observation groups."""

    @configclass
    class StudentCfg(ObservationGroupCfg):
        """What the student sees: cart position and pole angle, no velocities."""

        joint_pos_rel = ObservationTermCfg(func=mdp.joint_pos_rel)

        def __post_init__(self) -> None:
            """Concatenate the terms into one vector."""
            self.enable_corruption = False
            self.concatenate_terms = True

    @configclass
    class TeacherCfg(ObservationGroupCfg):
        """What the teacher sees (privileged): joint positions and velocities."""

        joint_pos_rel = ObservationTermCfg(func=mdp.joint_pos_rel)
        joint_vel_rel = ObservationTermCfg(func=mdp.joint_vel_rel)

        def __post_init__(self) -> None:
            """Concatenate the terms into one vector."""
            self.enable_corruption = False
            self.concatenate_terms = True

    policy: StudentCfg = StudentCfg()
    """The student's group (named ``policy``, Isaac Lab's default for the deployed policy)."""

    teacher: TeacherCfg = TeacherCfg()
    """The teacher's privileged group."""


@configclass
class DagmixCartpoleEnvCfg(CartpoleEnvCfg):
    """Isaac Lab's manager-based cartpole with a student/teacher observation split and an offline asset."""

    scene: DagmixCartpoleSceneCfg = DagmixCartpoleSceneCfg(num_envs=64, env_spacing=4.0, clone_in_fabric=True)
    observations: DagmixCartpoleObservationsCfg = DagmixCartpoleObservationsCfg()

    def __post_init__(self) -> None:
        """Point the robot at the cartpole USD authored by dagmix (written once to a cache folder)."""
        super().__post_init__()
        spawn = replace(self.scene.robot.spawn, usd_path=cartpole_usd_path())
        self.scene.robot = replace(self.scene.robot, spawn=spawn)


# ---------------------------------------------------------------------------------------------------- agents
_ACTOR = RslRlMLPModelCfg(
    hidden_dims=[32, 32],
    activation="elu",
    obs_normalization=False,
    distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0),
)


_STUDENT = RslRlRNNModelCfg(
    hidden_dims=[32, 32],
    activation="elu",
    obs_normalization=False,
    distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=0.1),
    rnn_type="gru",
    rnn_hidden_dim=32,
    rnn_num_layers=1,
)


@configclass
class DagmixCartpoleTeacherPPORunnerCfg(CartpolePPORunnerCfg):
    """PPO for the privileged teacher (Isaac Lab's cartpole PPO settings on the ``teacher`` group)."""

    experiment_name = "dagmix_cartpole_teacher"
    obs_groups = {"actor": ["teacher"], "critic": ["teacher"]}
    actor = _ACTOR


@configclass
class DagmixCartpoleDistillationRunnerCfg(RslRlDistillationRunnerCfg):
    """Distillation of the PPO teacher into a GRU student with dagmix's MixingDistillation.

    The defaults are the two-stage patch's (``use_two_stage_training=False``: the student drives, as in stock
    rsl_rl); switch on two-stage training or a mixing schedule with overrides, e.g.
    ``agent.algorithm.use_two_stage_training=True agent.algorithm.phase1_iterations=50``.
    """

    num_steps_per_env = 16
    max_iterations = 150
    save_interval = 50
    experiment_name = "dagmix_cartpole_distillation"
    obs_groups = {"student": ["policy"], "teacher": ["teacher"]}
    student = _STUDENT
    teacher = _ACTOR  # must match the PPO actor: its weights are loaded from the teacher checkpoint
    algorithm = RslRlMixingDistillationAlgorithmCfg(
        num_learning_epochs=2,
        learning_rate=1.0e-3,
        gradient_length=16,
        max_grad_norm=1.0,
    )


@configclass
class DagmixCartpoleDAggerPPORunnerCfg(RslRlMixingDAggerPPORunnerCfg):
    """Teacher-guided RL of the GRU student with dagmix's MixingDAggerPPO at its recipe defaults.

    Every dagmix key keeps its schema default (:class:`~dagmix.mixing.dagger_ppo_schema.DAggerPPOSchema`): the
    student drives, imitation and PPO share each state by the advisor weight, and with ``init_student`` (a
    distillation checkpoint of ``rsl_rl_distillation_cfg_entry_point``: the same GRU student) the critic warm-up
    and the std hand-off apply. The PPO settings are the teacher's, at a fixed learning rate. The critic reads the
    privileged ``teacher`` group with the teacher's critic config, so the teacher's PPO critic initialises it
    (``init_critic_from_teacher``). Train with ``--agent rsl_rl_dagger_ppo_cfg_entry_point --checkpoint
    TEACHER.pt`` (docs/dagger_ppo.md, "The hand-off from Isaac Lab and mjlab").
    """

    num_steps_per_env = 16
    max_iterations = 150
    save_interval = 50
    experiment_name = "dagmix_cartpole_dagger_ppo"
    obs_groups = {"actor": ["policy"], "critic": ["teacher"], "teacher": ["teacher"]}
    actor = _STUDENT  # the distillation student: a distilled checkpoint loads into it (init_student)
    critic = DagmixCartpoleTeacherPPORunnerCfg().critic  # the teacher's critic: its PPO weights load into it
    teacher = _ACTOR  # must match the PPO actor: its weights are loaded from the teacher checkpoint
    algorithm = RslRlMixingDAggerPPOAlgorithmCfg(
        **{k: v for k, v in CartpolePPORunnerCfg().algorithm.to_dict().items() if k not in ("class_name", "schedule")},
        schedule="fixed",  # the recipe was measured at a fixed rate (benchmarks/RESULTS.md, "Beyond imitation")
    )
