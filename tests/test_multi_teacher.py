"""MultiTeacherModel: each env labelled (and, where the teacher drives, driven) by its own expert, under rsl_rl's
stock runners with MixingDistillation and MixingDAggerPPO; checkpoints, resume, errors and per-expert scalars."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import make_train_cfg
from tensordict import TensorDict

from dagmix.algorithms import compat
from dagmix.envs.toy import PointMassEnv

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MultiTeacherModel needs rsl-rl-lib 5.x")

CLASS = "dagmix.models:MultiTeacherModel"
MLP = {"class_name": "MLPModel", "hidden_dims": [16, 16], "activation": "elu", "obs_normalization": False}
GRU = {**MLP, "class_name": "RNNModel", "rnn_type": "gru", "rnn_hidden_dim": 8, "rnn_num_layers": 1}
STEPS = 12  # episodes of 5 steps: every env resets (and may change expert) twice per rollout


class ExpertEnv(PointMassEnv):
    """The toy env plus ``expert_id`` (redrawn at each reset) and ``alt``, a privileged group of another size."""

    def __init__(self, num_envs: int = 16, seed: int = 0, num_experts: int = 2) -> None:
        self.num_experts = num_experts
        self.expert: torch.Tensor | None = None
        self.override: dict[int, float] = {}  # env -> selector value (to inject bad values)
        super().__init__(num_envs=num_envs, seed=seed, max_episode_length=5)

    def _reset(self, mask: torch.Tensor) -> None:
        super()._reset(mask)
        draw = torch.randint(0, self.num_experts, (self.num_envs,), generator=self.gen, device=self.device)
        self.expert = draw if self.expert is None else torch.where(mask, draw, self.expert)

    def get_observations(self) -> TensorDict:
        obs = super().get_observations()
        selector = self.expert.unsqueeze(-1).float()
        for env, value in self.override.items():
            selector[env] = value
        obs["expert_id"] = selector
        obs["alt"] = 2.0 * obs["teacher"][:, :2]
        return obs


OBS_GROUPS = {"teacher": ["teacher"], "teacher_1": ["alt"]}  # expert 0 reads `teacher`, expert 1 `alt`


def save_expert(path, cfg: dict, obs_set: str, seed: int) -> str:
    """A PPO checkpoint (random weights) of an expert built from ``cfg`` on the observation set ``obs_set``."""
    from rsl_rl.utils import resolve_callable

    env = ExpertEnv()
    cfg = dict(cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = resolve_callable(cfg.pop("class_name"))(
            env.get_observations(), OBS_GROUPS, obs_set, env.num_actions, **cfg
        )
    torch.save({"actor_state_dict": model.state_dict(), "iter": 0, "infos": None}, path)
    return str(path)


@pytest.fixture
def experts(tmp_path):
    return [
        save_expert(tmp_path / "expert0.pt", MLP, "teacher", 1),
        save_expert(tmp_path / "expert1.pt", GRU, "teacher_1", 2),
    ]


def teacher_section(checkpoints, teachers=(MLP, GRU), selector="expert_id") -> dict:
    return {"class_name": CLASS, "teachers": [dict(t) for t in teachers], "checkpoints": checkpoints,
            "selector_group": selector}  # fmt: skip


def distill_runner(checkpoints, mixing=None, env=None, teachers=(MLP, GRU), **teacher_kw):
    from rsl_rl.runners import DistillationRunner

    cfg = make_train_cfg({"mixing": mixing or {"schedule": "constant", "beta": 0.5}}, steps=STEPS)
    cfg["teacher"] = teacher_section(checkpoints, teachers, **teacher_kw)
    cfg["obs_groups"] = {"student": ["policy"], **OBS_GROUPS}
    env = env or ExpertEnv(seed=cfg["seed"])
    return DistillationRunner(env, cfg, None, "cpu")


def ppo_runner(checkpoints, mixing=None, env=None):
    from rsl_rl.runners import OnPolicyRunner

    actor = {**MLP, "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 0.1}}
    cfg = {
        "num_steps_per_env": STEPS,
        "max_iterations": 4,
        "save_interval": 1000,
        "seed": 1,
        "obs_groups": {"actor": ["policy"], "critic": ["teacher"], **OBS_GROUPS},
        "algorithm": {
            "class_name": "dagmix.algorithms:MixingDAggerPPO",
            "num_learning_epochs": 1,
            "num_mini_batches": 2,
            "learning_rate": 1e-3,
            "rnd_cfg": None,
            "critic_warmup": None,
            "mixing": mixing or {"schedule": "constant", "beta": 0.5},
        },
        "actor": actor,
        "critic": dict(MLP),
        "teacher": teacher_section(checkpoints),
        "logger": "tensorboard",
    }
    return OnPolicyRunner(env or ExpertEnv(seed=1), cfg, None, "cpu")


def rollout_with_reference(runner, steps=STEPS):
    """Run one rollout as the runner does, alongside independent copies of the experts (reset on the same dones).

    Returns (the executed actions, each env's own expert's action by reference), both (steps, num_envs, actions).
    """
    alg, env = runner.alg, runner.env
    teacher = compat.raw_teacher(alg)
    refs = [copy.deepcopy(e) for e in teacher.experts]
    alg.train_mode()
    obs = env.get_observations()
    executed, wanted, switched = [], [], torch.zeros(env.num_envs, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(steps):
            outs = torch.stack([r(obs) for r in refs])
            ids = obs["expert_id"].view(-1).long()
            wanted.append(outs[ids, torch.arange(env.num_envs)])
            executed.append(alg.act(obs))
            obs, rewards, dones, extras = env.step(executed[-1])
            switched |= obs["expert_id"].view(-1).long() != ids
            alg.process_env_step(obs, rewards, dones, extras)
            for r in refs:
                r.reset(dones)
    assert switched.any(), "the test needs envs whose expert changes at a reset"
    return torch.stack(executed), torch.stack(wanted)


# ----------------------------------------------------------------------------------------------- dispatch
def test_labels_and_executed_actions_are_each_envs_own_expert_bit_for_bit(experts):
    runner = distill_runner(experts)
    alg = runner.alg
    executed, wanted = rollout_with_reference(runner)
    assert torch.equal(alg.storage.privileged_actions, wanted)  # every env's label is its own expert's
    mask = alg.teacher_masks
    assert mask.any() and (~mask).any()
    assert torch.equal(executed[mask], wanted[mask])  # where the teacher drove: its own expert's action, exactly
    assert torch.equal(executed[~mask], alg.storage.actions[~mask])  # elsewhere the student's


def test_dagger_ppo_labels_and_executed_actions_are_each_envs_own_expert(experts):
    from dagmix.algorithms.dagger_ppo import DRIVEN_KEY, EXPERT_KEY, LABEL_KEY

    runner = ppo_runner(experts)
    alg = runner.alg
    executed, wanted = rollout_with_reference(runner)
    stored = alg.storage.observations
    assert torch.equal(stored[LABEL_KEY], wanted)
    mask = stored[DRIVEN_KEY].squeeze(-1) > 0.5
    assert mask.any() and (~mask).any()
    assert torch.equal(executed[mask], wanted[mask])
    assert torch.equal(stored[EXPERT_KEY].squeeze(-1), stored["expert_id"].squeeze(-1))


@pytest.mark.parametrize("schedule, teacher_drives", [("student_only", False), ("teacher_only", True)])
def test_student_only_and_teacher_only_keep_their_meaning(experts, schedule, teacher_drives):
    runner = distill_runner(experts, mixing={"schedule": schedule})
    alg = runner.alg
    executed, wanted = rollout_with_reference(runner)
    assert bool(alg.teacher_masks.all()) is teacher_drives and bool(alg.teacher_masks.any()) is teacher_drives
    assert torch.equal(executed, wanted if teacher_drives else alg.storage.actions)
    assert torch.equal(alg.storage.privileged_actions, wanted)  # labels are the experts' either way


def test_experts_read_their_own_observation_sets(experts):
    teacher = compat.raw_teacher(distill_runner(experts).alg)
    assert teacher.expert_obs_sets == ["teacher", "teacher_1"]
    assert teacher.experts[0].obs_groups == ["teacher"] and teacher.experts[1].obs_groups == ["alt"]
    assert teacher.experts[1].obs_dim == 2 and teacher.experts[0].obs_dim == 4


def test_recurrent_experts_reset_hidden_states_of_done_envs_only(experts):
    runner = distill_runner(experts)
    teacher = compat.raw_teacher(runner.alg)
    obs = runner.env.get_observations()
    with torch.inference_mode():
        teacher(obs)
        teacher(obs)
        before = teacher.get_hidden_state()[1].clone()  # expert 1's GRU state, shape (layers, num_envs, hidden)
        dones = torch.zeros(runner.env.num_envs, dtype=torch.long)
        dones[[2, 5]] = 1
        teacher.reset(dones)
    after = teacher.get_hidden_state()[1]
    assert before[:, [2, 5]].abs().sum() > 0
    assert torch.equal(after[:, [2, 5]], torch.zeros_like(after[:, [2, 5]]))
    keep = [i for i in range(runner.env.num_envs) if i not in (2, 5)]
    assert torch.equal(after[:, keep], before[:, keep])
    assert teacher.get_hidden_state()[0] is None  # the MLP expert has none


# ----------------------------------------------------------------------------------------------- checkpoints
def test_checkpoints_load_at_construction_and_stock_runner_learns_without_load(experts):
    runner = distill_runner(experts)
    teacher = compat.raw_teacher(runner.alg)
    for expert, path in zip(teacher.experts, experts, strict=True):
        saved = torch.load(path, weights_only=True)["actor_state_dict"]
        assert all(torch.equal(v, saved[k]) for k, v in expert.state_dict().items())
    assert runner.alg.teacher_loaded
    runner.learn(2)
    assert runner.current_learning_iteration == 1


def test_without_checkpoints_the_teacher_is_not_loaded(experts):
    runner = distill_runner(None)
    assert not runner.alg.teacher_loaded
    with pytest.raises(ValueError, match="Teacher model parameters not loaded"):
        runner.learn(1)


def test_dagger_ppo_under_the_stock_runner_learns_without_load(experts):
    runner = ppo_runner(experts)
    assert runner.alg.teacher_loaded
    runner.learn(2)
    metrics = runner.alg.last_metrics
    fractions = [metrics[f"Distillation/expert_fraction_{k}"] for k in range(2)]
    assert sum(fractions) == pytest.approx(1.0) and min(fractions) > 0
    assert "Distillation/behavior_loss_expert_0" in metrics and "Distillation/behavior_loss_expert_1" in metrics


def test_checkpoint_round_trip_resumes_everything(tmp_path, experts):
    runner = distill_runner(experts)
    runner.learn(2)
    path = str(tmp_path / "model_1.pt")
    runner.save(path)
    saved = torch.load(path, weights_only=True)
    assert any(k.startswith("experts.1.") for k in saved["teacher_state_dict"])

    resumed = distill_runner(None)  # no checkpoints: runner.load of the dagmix checkpoint restores the experts
    resumed.load(path)
    a, b = runner.alg, resumed.alg
    assert b.teacher_loaded and resumed.current_learning_iteration == runner.current_learning_iteration
    for x, y in ((compat.raw_teacher(a), compat.raw_teacher(b)), (a.student, b.student)):
        sx, sy = x.state_dict(), y.state_dict()
        assert sx.keys() == sy.keys() and all(torch.equal(sx[k], sy[k]) for k in sx)
    assert torch.equal(a.mixing_policy.generator.get_state(), b.mixing_policy.generator.get_state())
    resumed.learn(1)  # and it trains on


def test_loading_one_actor_into_the_multi_teacher_says_what_to_do(experts):
    runner = distill_runner(None)
    with pytest.raises(ValueError, match="checkpoints"):
        runner.load(experts[0])


# ----------------------------------------------------------------------------------------------- errors
def test_wrong_number_of_checkpoints(experts):
    with pytest.raises(ValueError, match="checkpoints has 1 entries but teachers has 2"):
        distill_runner(experts[:1])


def test_expert_whose_checkpoint_does_not_fit_names_expert_and_file(experts):
    wrong = {**GRU, "rnn_hidden_dim": 4}
    with pytest.raises(ValueError, match=r"Expert 1 \(RNNModel.*expert1\.pt"):
        distill_runner(experts, teachers=(MLP, wrong))


def test_missing_or_misshaped_selector_group(experts):
    with pytest.raises(ValueError, match="'expert_idx' is not an observation group"):
        distill_runner(experts, selector="expert_idx")
    with pytest.raises(ValueError, match=r"'alt' has shape \(16, 2\)"):
        distill_runner(experts, selector="alt")


@pytest.mark.parametrize("value, what", [(2.0, "out of range"), (-1.0, "out of range"), (0.5, "fractional")])
def test_bad_selector_at_construction_names_env_and_value(experts, value, what):
    from dagmix.models import SelectorError

    env = ExpertEnv(seed=1)
    env.override = {3: value}
    with pytest.raises(SelectorError, match=rf"value {value!r} for env 3, which (is )?{what}"):
        distill_runner(experts, env=env)


def test_the_model_runs_on_an_evaluation_env_of_another_size(experts):
    """A periodic evaluation runs the teacher on its own env (another number of envs); bad values there count too."""
    from dagmix.envs.evaluation import evaluate_policy
    from dagmix.models import SelectorError

    class EvalEnv(ExpertEnv):
        def reset(self):  # evaluate_policy resets the env first
            self._reset(torch.ones(self.num_envs, dtype=torch.bool))
            self.episode_length_buf.zero_()
            return self.get_observations()

    runner = distill_runner(experts)  # 16 envs
    teacher = compat.raw_teacher(runner.alg)  # an MLP and a GRU expert: hidden states (None, h) are kept
    with torch.inference_mode():
        teacher(runner.env.get_observations())
    hidden = teacher.get_hidden_state()[1].clone()
    eval_env = EvalEnv(num_envs=5, seed=4)
    assert evaluate_policy(eval_env, teacher, 5).num_episodes == 5
    assert teacher.expert_ids.shape == (5,)
    assert torch.equal(teacher.get_hidden_state()[1], hidden)  # a training run is left untouched
    teacher.check_selector()  # nothing invalid
    eval_env.override = {3: 7.0}
    evaluate_policy(eval_env, teacher, 5)
    with pytest.raises(SelectorError, match=r"value 7\.0 for env 3, which is out of range"):
        teacher.check_selector()


@pytest.mark.parametrize("make", [distill_runner, ppo_runner])
def test_bad_selector_during_a_rollout_stops_the_update_before_any_gradient_step(experts, make):
    from dagmix.models import SelectorError

    runner = make(experts)
    runner.env.override = {6: 1.5}  # after construction: seen only on the device while stepping
    alg = runner.alg
    student = compat.raw_student(alg) or alg.actor
    alg.train_mode()
    obs = runner.env.get_observations()
    with torch.inference_mode():
        for _ in range(STEPS):  # act() raises nothing: the values are counted on the device
            obs, rewards, dones, extras = runner.env.step(alg.act(obs))
            alg.process_env_step(obs, rewards, dones, extras)
        if make is ppo_runner:
            alg.compute_returns(obs)
    before = copy.deepcopy(student.state_dict())  # after the rollout (rsl-rl 5.4 updates normalizers per step)
    with pytest.raises(SelectorError, match=r"value 1\.5 for env 6, which is fractional"):
        alg.update()
    after = student.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_selector_check_is_one_read_per_update_not_per_step(experts, monkeypatch):
    """The per-step path never reads a tensor to the host: Tensor.item / tolist / __bool__ are not called."""
    runner = distill_runner(experts)
    alg = runner.alg
    teacher = compat.raw_teacher(alg)
    obs = runner.env.get_observations()
    calls = []
    for name in ("item", "tolist", "__bool__", "cpu"):
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _original=original, _name=name, **k):
            calls.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    with torch.inference_mode():
        teacher(obs)
    monkeypatch.undo()
    assert calls == []


# ----------------------------------------------------------------------------------------------- per-expert scalars
def test_per_expert_scalars_are_the_fractions_and_losses_of_each_experts_samples(experts):
    runner = distill_runner(experts)
    alg = runner.alg
    rollout_with_reference(runner)
    ids = alg.expert_stats.ids.clone()
    student = compat.raw_student(alg)
    with torch.inference_mode():  # the behaviour loss per sample before the (single) gradient step
        per = torch.stack(
            [
                (student(alg.storage.observations[t]) - alg.storage.privileged_actions[t]).pow(2).mean(-1)
                for t in range(STEPS)
            ]
        )
    losses = alg.update()
    metrics = alg.last_metrics
    for k in range(2):
        assert metrics[f"Distillation/expert_fraction_{k}"] == pytest.approx((ids == k).float().mean().item())
        assert metrics[f"Distillation/behavior_loss_expert_{k}"] == pytest.approx(per[ids == k].mean().item(), 1e-5)
    assert sum(
        metrics[f"Distillation/behavior_loss_expert_{k}"] * metrics[f"Distillation/expert_fraction_{k}"]
        for k in range(2)
    ) == pytest.approx(losses["behavior"], rel=1e-5)


# ----------------------------------------------------------------------------------------------- front ends
def _model_from_section(section: dict, experts):
    """Build the teacher as rsl_rl does from a ``teacher`` section dict."""
    from rsl_rl.utils import resolve_callable

    section = dict(section)
    env = ExpertEnv()
    return resolve_callable(section.pop("class_name"))(env.get_observations(), OBS_GROUPS, "teacher", 2, **section)


def test_isaaclab_configclass_gives_the_section_rsl_rl_builds(isaaclab, experts):
    from isaaclab_rl.rsl_rl import RslRlDistillationRunnerCfg, RslRlMLPModelCfg, RslRlRNNModelCfg
    from isaaclab_rl.rsl_rl.utils import handle_deprecated_rsl_rl_cfg

    rnn = {k: v for k, v in GRU.items() if k != "class_name"}
    teacher = isaaclab.RslRlMultiTeacherModelCfg(
        teachers=[RslRlMLPModelCfg(hidden_dims=[16, 16], activation="elu"), RslRlRNNModelCfg(**rnn)],
        checkpoints=experts,
        selector_group="expert_id",
    )
    cfg = RslRlDistillationRunnerCfg(
        num_steps_per_env=8,
        max_iterations=2,
        save_interval=10,
        experiment_name="x",
        obs_groups={"student": ["policy"], **OBS_GROUPS},
        student=RslRlMLPModelCfg(hidden_dims=[16], activation="elu"),
        teacher=teacher,
        algorithm=isaaclab.RslRlMixingDistillationAlgorithmCfg(learning_rate=1e-3, gradient_length=8),
    )
    section = handle_deprecated_rsl_rl_cfg(cfg, "5.5.1").to_dict()["teacher"]  # as Isaac Lab's train script does
    model = _model_from_section(section, experts)
    assert model.checkpoints_loaded and model.expert_obs_sets == ["teacher", "teacher_1"]
    with pytest.raises(ValueError, match="checkpoints has 1 entries"):
        isaaclab.RslRlMultiTeacherModelCfg(teachers=[dict(MLP)] * 2, checkpoints=experts[:1], selector_group="e")


def test_mjlab_dataclass_gives_the_section_rsl_rl_builds(experts):
    pytest.importorskip("mjlab", reason="needs mjlab 1.6")
    import dataclasses

    from mjlab.rl import RslRlModelCfg

    from dagmix.integrations.mjlab_tasks import DagmixMultiTeacherCfg, teacher_dict

    rnn = {k: v for k, v in GRU.items() if k != "obs_normalization"}
    cfg = DagmixMultiTeacherCfg(
        teachers=[RslRlModelCfg(hidden_dims=(16, 16)), RslRlModelCfg(**rnn)],
        checkpoints=experts,
        selector_group="expert_id",
    )
    section = teacher_dict(dataclasses.asdict(cfg))
    assert section["teachers"][0]["class_name"] == "MLPModel" and section["teachers"][1]["class_name"] == "RNNModel"
    model = _model_from_section(section, experts)
    assert model.checkpoints_loaded and model.expert_obs_sets == ["teacher", "teacher_1"]


def test_the_front_ends_inherit_every_schema_field():
    import dataclasses

    from dagmix.mixing.multi_teacher_schema import MULTI_TEACHER_KEYS, MultiTeacherSchema

    assert {f.name for f in dataclasses.fields(MultiTeacherSchema)} == {"class_name", *MULTI_TEACHER_KEYS}
    import inspect

    from dagmix.models import MultiTeacherModel

    params = set(inspect.signature(MultiTeacherModel.__init__).parameters)
    assert set(MULTI_TEACHER_KEYS) <= params
