"""EstimatorRNNModel: the student's memory also trained to estimate the teacher's observation (rsl-rl-lib 5.x)."""

from __future__ import annotations

import glob

import pytest
import torch
from helpers import check_recurrent_model_paths_agree
from tensordict import TensorDict

from dagmix import cli
from dagmix.algorithms import compat

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="the model API of rsl-rl-lib 5.x")

GROUPS = {"student": ["policy"], "teacher": ["teacher"]}
RNN = {"hidden_dims": [16], "rnn_type": "gru", "rnn_hidden_dim": 8, "obs_normalization": True}


def _obs(n: int = 6, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {"policy": torch.randn(n, 5, generator=g), "teacher": 3.0 + 2.0 * torch.randn(n, 3, generator=g)},
        batch_size=[n],
    )


def _model(coef: float = 1.0, **kwargs):
    from dagmix.models import EstimatorRNNModel

    torch.manual_seed(0)
    return EstimatorRNNModel(_obs(), GROUPS, "student", 2, estimator_coef=coef, **RNN, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimator_obs_set": "critic"}, r"estimator_obs_set='critic' is not an observation set.*student, teacher"),
        ({"estimator_coef": 0.0}, r"estimator_coef=0.0 must be a number > 0"),
        ({"estimator_coef": -1.0}, r"estimator_coef=-1.0 must be a number > 0"),
        ({"estimator_coef": True}, r"estimator_coef=True must be a number > 0"),
        ({"estimator_coef": float("inf")}, r"estimator_coef=inf must be finite"),
        ({"estimator_coef": float("nan")}, r"estimator_coef=nan must be a number > 0"),
        ({"estimator_rows": [0, 3]}, r"estimator_rows=\[0, 3\] must be distinct row indices in 0..2 .*teacher"),
        ({"estimator_rows": [1, 1]}, r"estimator_rows=\[1, 1\] must be distinct"),
        ({"estimator_rows": []}, r"estimator_rows=\[\] must be distinct row indices"),
        ({"estimator_mode": "both"}, r"estimator_mode='both' is not one of 'auxiliary', 'input'"),
        ({"estimator_mode": "input", "rnn_type": "lstm"}, r"estimator_mode='input' needs rnn_type='gru'"),
        ({"estimator_mode": "input", "estimator_hidden_dim": 0}, r"estimator_hidden_dim=0 must be an integer >= 1"),
    ],
)
def test_bad_settings_name_the_value(kwargs, match):
    from dagmix.models import EstimatorRNNModel

    with pytest.raises(ValueError, match=match):
        EstimatorRNNModel(_obs(), GROUPS, "student", 2, **(RNN | kwargs))


def test_a_target_group_the_env_does_not_return_is_named():
    from dagmix.models import EstimatorRNNModel

    groups = {"student": ["policy"], "teacher": ["teacher", "privileged"]}
    with pytest.raises(ValueError, match=r"does not return \['privileged'\] \(it returns policy, teacher\)"):
        EstimatorRNNModel(_obs(), groups, "student", 2, **RNN)


@pytest.mark.parametrize("coef", [1.0, 0.25])
def test_gradient_is_the_algorithms_loss_plus_coef_times_the_heads(coef):
    model = _model(coef)
    model.update_normalization(_obs(64, seed=1))  # the target's running statistics
    obs, labels = _obs(seed=2), torch.randn(6, 2)
    torch.nn.functional.mse_loss(model(obs), labels).backward()  # what rsl_rl's update computes from the output
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    assert model.estimator_stats[1].item() == 1.0

    model.zero_grad()
    model.reset()
    x = model.obs_normalizer(obs["policy"])
    out, _ = model.rnn.rnn(x.unsqueeze(0))
    h = out.squeeze(0)
    target = (obs["teacher"] - model.estimator_normalizer._mean) / (model.estimator_normalizer._std + 0.01)
    head = (model.estimator(h) - target).square().mean()
    actions = model.mlp(h)  # no distribution: the MLP's output
    (torch.nn.functional.mse_loss(actions, labels) + coef * head).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, msg=name)
    assert got["estimator.weight"].abs().sum() > 0  # the head learns; rsl_rl's loss alone never reaches it


def test_rollouts_and_export_are_rnnmodels_and_read_no_teacher_group():
    from rsl_rl.models import RNNModel

    model = _model()
    torch.manual_seed(0)
    plain = RNNModel(_obs(), GROUPS, "student", 2, **RNN)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("estimator")}
    plain.load_state_dict(state)
    obs = _obs(seed=3)
    with torch.inference_mode():  # rsl_rl's rollouts
        torch.testing.assert_close(model(obs), plain(obs))
    assert model.estimator_stats.sum().item() == 0.0  # no target read, nothing computed
    model.eval()
    with torch.no_grad():
        policy_only = TensorDict({"policy": obs["policy"]}, batch_size=[6])  # deployment: no teacher group
        model.reset()
        expected = model(policy_only)
        exported = model.as_jit()
        torch.testing.assert_close(exported(obs["policy"][:1]), expected[:1])


@pytest.mark.filterwarnings("ignore:The student takes over")
@pytest.mark.parametrize("mode", ["auxiliary", "input"])
def test_distillation_and_dagger_ppo_train_the_head_and_log_its_loss(tmp_path, capsys, mode):
    common = ["--task", "quadcopter_blind", "--num_envs", "32", "--seed", "0", "--eval_interval", "0"]
    common += ["--final_eval_episodes", "0", "env.episode_length_s=1.0", "--log_root", str(tmp_path)]
    student = ["student.class_name=dagmix.models:EstimatorRNNModel", f"student.estimator_mode={mode}"]
    assert cli.main(["distill", *common, "--max_iterations", "20", *student]) == 0  # the teacher drives (60)
    out = capsys.readouterr().out
    losses = [float(line.split()[-1]) for line in out.splitlines() if "Distillation/estimator_loss:" in line]
    assert len(losses) == 20  # episodes of 50 steps, in step: each pair of iterations holds one whole episode
    assert sum(losses[-2:]) < 0.7 * sum(losses[:2])  # the memory learns the teacher's observation
    (ckpt,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_blind_distillation" / "*" / "model_19.pt"))
    saved = torch.load(ckpt, weights_only=True)
    head = "estimator.weight" if mode == "auxiliary" else "rnn.rnn.head.weight"
    assert saved["student_state_dict"][head].shape == (14, 128)  # the teacher's 14 rows
    assert saved["dagmix"]["model"]["student"]["class_name"] == "dagmix.models:EstimatorRNNModel"

    actor = ["actor.class_name=dagmix.models:EstimatorRNNModel", f"actor.estimator_mode={mode}"]
    argv = ["distill", "--algorithm", "dagger_ppo", *common, "--max_iterations", "2", *actor, "--init_student", ckpt]
    assert cli.main(argv) == 0  # PPO's padded trajectories: the targets are unpadded as the RNN's output
    out = capsys.readouterr().out
    assert out.count("Distillation/estimator_loss:") == 2


def test_rows_select_the_target_and_the_keys_are_overrides_once_class_name_names_the_model():
    from dagmix.envs.task_configs import distill_train_cfg
    from dagmix.mixing.overrides import apply_overrides

    model = _model(estimator_rows=[2, 0])
    obs = _obs(seed=4)
    torch.testing.assert_close(model._target(obs), obs["teacher"][:, [2, 0]])
    assert model.estimator.out_features == 2

    cfg = distill_train_cfg("quadcopter_blind")
    with pytest.raises(ValueError, match="Unknown config key 'student.estimator_coef'"):
        apply_overrides(cfg, {}, ["student.estimator_coef=2.0"])  # a plain RNNModel has no such key
    apply_overrides(cfg, {}, ["student.class_name=dagmix.models:EstimatorRNNModel", "student.estimator_rows=[0,1,2]"])
    apply_overrides(cfg, {}, ["student.estimator_coef=2"])
    assert cfg["student"]["estimator_rows"] == [0, 1, 2] and cfg["student"]["estimator_coef"] == 2.0
    with pytest.raises(ValueError, match=r"student.estimator_coef=x is not a number \(the default is 2.0\)"):
        apply_overrides(cfg, {}, ["student.estimator_coef=x"])


def test_input_mode_trains_the_estimator_on_its_loss_alone_and_the_policy_on_the_algorithms():
    model = _model(2.0, estimator_mode="input", estimator_hidden_dim=4, estimator_rows=[1])
    twin = model.rnn.rnn
    assert (twin.estimator_gru.hidden_size, twin.policy_gru.input_size, twin.hidden_size) == (4, 5 + 1, 8 + 4)
    model.update_normalization(_obs(64, seed=1))
    obs, labels = _obs(seed=2), torch.randn(6, 2)
    torch.nn.functional.mse_loss(model(obs), labels).backward()
    got = {name: p.grad.clone() for name, p in model.named_parameters()}

    model.zero_grad()
    model.reset()
    out, _, estimate = twin.run(model.obs_normalizer(obs["policy"]).unsqueeze(0), None)
    target = (obs["teacher"][:, [1]] - model.estimator_normalizer._mean) / (model.estimator_normalizer._std + 0.01)
    (2.0 * (estimate.squeeze(0) - target).square().mean()).backward(retain_graph=True)
    for name, p in model.named_parameters():  # the estimator: its loss alone
        if name.startswith(("rnn.rnn.estimator_gru", "rnn.rnn.head")):
            torch.testing.assert_close(got[name], p.grad, msg=name)
    model.zero_grad()
    torch.nn.functional.mse_loss(model.mlp(out.squeeze(0)), labels).backward()
    for name, p in model.named_parameters():  # the policy: the algorithm's loss alone (the estimate is detached)
        if not name.startswith(("rnn.rnn.estimator_gru", "rnn.rnn.head")):
            torch.testing.assert_close(got[name], p.grad, msg=name)


def test_input_mode_batches_step_rollouts_and_exports_agree():
    model = _model(estimator_mode="input", estimator_hidden_dim=4)
    model.update_normalization(_obs(64, seed=1))
    model.eval()
    check_recurrent_model_paths_agree(model, [_obs(seed=10 + t) for t in range(5)], hidden_width=12)


def test_the_schema_is_the_models_keys_and_the_mjlab_dataclass_builds_it():
    import dataclasses
    import inspect

    from dagmix.mixing.estimator_schema import ESTIMATOR_KEYS
    from dagmix.models import EstimatorRNNModel

    params = inspect.signature(EstimatorRNNModel.__init__).parameters
    assert {k: params[k].default for k in params if k.startswith("estimator_")} == ESTIMATOR_KEYS
    pytest.importorskip("mjlab", reason="needs mjlab 1.6")
    from rsl_rl.utils import resolve_callable

    from dagmix.integrations.mjlab_tasks import DagmixEstimatorModelCfg, drop_unset_model_keys

    cfg = DagmixEstimatorModelCfg(hidden_dims=(16,), rnn_hidden_dim=8, estimator_mode="input", estimator_rows=[1])
    section = drop_unset_model_keys(dataclasses.asdict(cfg))  # as the runners turn mjlab's model configs into dicts
    model = resolve_callable(section.pop("class_name"))(_obs(), GROUPS, "student", 2, **section)
    assert type(model).__name__ == "EstimatorRNNModel" and model.estimator_mode == "input"
    assert model.rnn.rnn.policy_gru.hidden_size == 8 and model.estimate_dim == 1
