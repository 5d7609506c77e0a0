"""FilterRNNModel: a GRU student that also reads its observation's rates of change from fixed filters (rsl-rl 5.x)."""

from __future__ import annotations

import pytest
import torch
from helpers import check_recurrent_model_paths_agree
from tensordict import TensorDict

from dagmix.algorithms import compat

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="the model API of rsl-rl-lib 5.x")

GROUPS = {"student": ["policy"], "teacher": ["teacher"]}
RNN = {"hidden_dims": [16], "rnn_type": "gru", "rnn_hidden_dim": 8}
TAU = (2.0, 5.0, 10.0)
HIDDEN = 8 + len(TAU) * 5 + len(TAU)  # the GRU's state, the filters' sums (5 rows each) and their bias weights


def _obs(n: int = 6, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({"policy": torch.randn(n, 5, generator=g), "teacher": torch.randn(n, 3, generator=g)}, [n])


def _model(**kwargs):
    from dagmix.models import FilterRNNModel

    torch.manual_seed(0)
    return FilterRNNModel(_obs(), GROUPS, "student", 2, **{"filter_time_constants": TAU, **RNN, **kwargs})


@pytest.mark.parametrize(
    ("tau", "match"),
    [
        ((2.0,), r"filter_time_constants=\(2.0,\) must be at least two increasing"),
        ((5.0, 2.0), r"filter_time_constants=\(5.0, 2.0\) must be at least two increasing"),
        ((2.0, 2.0), r"must be at least two increasing"),
        ((0.5, 2.0), r"numbers >= 1 \(env steps\)"),
        ((2.0, float("inf")), r"finite"),
        ((True, 2.0), r"filter_time_constants=\(True, 2.0\)"),
    ],
)
def test_bad_time_constants_name_the_value(tau, match):
    with pytest.raises(ValueError, match=match):
        _model(filter_time_constants=tau)


def test_an_lstm_is_refused():
    with pytest.raises(ValueError, match="FilterRNNModel needs rnn_type='gru'"):
        _model(rnn_type="lstm")


def test_the_rates_of_a_ramp_are_its_slope_and_a_reset_restarts_them_from_zero():
    bank = _model().rnn.rnn
    slope = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.1])
    x = torch.arange(200.0).view(200, 1, 1) * slope + 3.0  # (time, batch 1, rows)
    _, h, rate = bank.run(x, None)
    assert h.shape == (1, 1, HIDDEN)
    assert torch.equal(rate[0], torch.zeros(1, 10))  # the first step after a reset: every filter holds the input
    # each adjacent pair of filters measures the slope per step, once the slower one has settled
    torch.testing.assert_close(rate[-1].view(2, 5), slope.expand(2, 5), atol=1e-4, rtol=0)
    _, h2, rate2 = bank.run(x[:1] + 7.0, h)  # a jump of 7 without a reset: the rates see it
    assert rate2.abs().max() > 0.1
    _, _, rate3 = bank.run(x[:1] + 7.0, torch.zeros_like(h))  # rsl_rl zeroes a done env's hidden state
    assert torch.equal(rate3, torch.zeros_like(rate3))


def test_the_rates_statistics_learn_from_rollout_steps_when_the_observations_do():
    model = _model(obs_normalization=True)
    norm = model.rnn.rnn.rate_normalizer
    with torch.inference_mode():
        model.get_latent(_obs())  # two rollout steps (train mode, no gradient)
        model.get_latent(_obs(seed=1))
    assert int(norm.count) == 0  # not yet: an update would recompute these rates with other statistics
    model.get_latent(_obs())  # the update's recomputation (gradients on): kept out
    model.update_normalization(_obs())  # rsl_rl's call, after a step or after the update (by version)
    assert int(norm.count) == 12 and int(model.obs_normalizer.count) == 6
    model.eval()
    with torch.inference_mode():
        model.get_latent(_obs())  # evaluation
    model.update_normalization(_obs())
    assert int(norm.count) == 12


def test_the_gru_reads_the_observation_and_its_normalised_rates():
    model = _model()
    bank = model.rnn.rnn
    bank.rate_normalizer.update(torch.randn(64, 10) * 3.0 + 1.0)  # statistics far from (0, 1)
    seen = []
    bank.gru.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    x = torch.randn(4, 6, 5)
    _, _, rate = bank.run(x, None)
    expected = torch.cat([x, (rate - bank.rate_normalizer._mean) / (bank.rate_normalizer._std + 1e-2)], dim=-1)
    torch.testing.assert_close(seen[0], expected)


def test_a_batch_that_starts_mid_episode_continues_the_rollout_with_two_layers():
    model = _model(rnn_num_layers=2)
    model.eval()
    assert model.rnn.rnn.hidden_size == HIDDEN  # the packed state's width is per layer
    with torch.no_grad():
        for t in range(4):  # a rollout in progress: the filters and the GRUs hold state
            model.get_latent(_obs(seed=20 + t))
        start = model.get_hidden_state().clone()
        assert start.shape == (2, 6, HIDDEN) and start[:, :, 8:].abs().sum() > 0
        steps = [_obs(seed=30 + t) for t in range(3)]
        outs = torch.stack([model.get_latent(o) for o in steps])
        stacked = TensorDict({k: torch.stack([o[k] for o in steps]) for k in ("policy", "teacher")}, batch_size=[3, 6])
        batch = model.get_latent(stacked, torch.ones(3, 6, dtype=torch.bool), start)  # PPO's stored state
    torch.testing.assert_close(batch, outs)


def test_a_checkpoint_with_other_time_constants_is_refused():
    state = _model().state_dict()
    other = _model(filter_time_constants=(2.0, 4.0, 10.0))
    with pytest.raises(ValueError, match=r"filter_time_constants are \[2.0, 4.0, 10.0\], the checkpoint's \[2.0, 5.0"):
        other.load_state_dict(state)
    _model().load_state_dict(state)  # the same ones load


def test_batches_step_rollouts_and_exports_agree():
    model = _model()
    model.update_normalization(_obs(64, seed=1))
    model.eval()  # fixed statistics, so the rollout and the batch see the same normalisation
    check_recurrent_model_paths_agree(model, [_obs(seed=10 + t) for t in range(5)], hidden_width=HIDDEN)


def test_the_time_constants_are_an_override_once_class_name_names_the_model():
    from dagmix.envs.task_configs import distill_train_cfg
    from dagmix.mixing.estimator_schema import FILTER_KEYS
    from dagmix.mixing.overrides import apply_overrides
    from dagmix.models import FilterRNNModel

    cfg = distill_train_cfg("quadcopter_blind")
    with pytest.raises(ValueError, match="Unknown config key 'student.filter_time_constants'"):
        apply_overrides(cfg, {}, ["student.filter_time_constants=[2,4]"])  # a plain RNNModel has no such key
    apply_overrides(cfg, {}, ["student.class_name=dagmix.models:FilterRNNModel", "student.filter_time_constants=[2,4]"])
    assert cfg["student"]["filter_time_constants"] == [2, 4]
    torch.manual_seed(0)
    model = FilterRNNModel(_obs(), GROUPS, "student", 2, **RNN)  # the default time constants: the schema's
    assert model.filter_time_constants == FILTER_KEYS["filter_time_constants"]


def test_the_schema_is_the_models_keys_and_the_mjlab_dataclass_builds_it():
    import dataclasses
    import inspect

    from dagmix.mixing.estimator_schema import FILTER_KEYS
    from dagmix.models import FilterRNNModel

    params = inspect.signature(FilterRNNModel.__init__).parameters
    assert {k: list(params[k].default) for k in params if k.startswith("filter_")} == FILTER_KEYS
    pytest.importorskip("mjlab", reason="needs mjlab 1.6")
    from rsl_rl.utils import resolve_callable

    from dagmix.integrations.mjlab_tasks import DagmixFilterModelCfg, drop_unset_model_keys

    assert DagmixFilterModelCfg().filter_time_constants == FILTER_KEYS["filter_time_constants"]
    cfg = DagmixFilterModelCfg(hidden_dims=(16,), rnn_hidden_dim=8, filter_time_constants=[2.0, 4.0, 8.0])
    section = drop_unset_model_keys(dataclasses.asdict(cfg))  # as the runners turn mjlab's model configs into dicts
    model = resolve_callable(section.pop("class_name"))(_obs(), GROUPS, "student", 2, **section)
    assert type(model).__name__ == "FilterRNNModel" and model.filter_time_constants == [2.0, 4.0, 8.0]
    _, h, _ = model.rnn.rnn.run(torch.zeros(1, 6, 5), None)
    assert h.shape == (1, 6, 8 + 3 * 5 + 3)  # the GRU, 3 filters of 5 rows, their bias weights


@pytest.mark.filterwarnings("ignore:The student takes over")
def test_distillation_then_the_dagger_ppo_hand_off_run_and_carry_the_filters(tmp_path):
    import glob

    from dagmix import cli

    common = ["--task", "quadcopter_blind", "--num_envs", "16", "--seed", "0", "--eval_interval", "0"]
    common += ["--final_eval_episodes", "0", "env.episode_length_s=1.0", "--log_root", str(tmp_path)]
    student = ["student.class_name=dagmix.models:FilterRNNModel", "student.filter_time_constants=[2,8]"]
    assert cli.main(["distill", *common, "--max_iterations", "3", *student]) == 0
    (ckpt,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_blind_distillation" / "*" / "model_2.pt"))
    saved = torch.load(ckpt, weights_only=True)["student_state_dict"]
    count = int(saved["rnn.rnn.rate_normalizer.count"])  # every rollout step once, when the observations learn
    assert count == int(saved["obs_normalizer.count"]) and count >= 2 * 24 * 16
    assert saved["rnn.rnn.gru.weight_ih_l0"].shape == (3 * 128, 2 * 13)  # the 13 observations and their rates

    actor = ["actor.class_name=dagmix.models:FilterRNNModel", "actor.filter_time_constants=[2,8]"]
    argv = ["distill", "--algorithm", "dagger_ppo", *common, "--max_iterations", "2", *actor, "--init_student", ckpt]
    assert cli.main(argv) == 0  # PPO's padded trajectories with the filters' state in the stored hidden state
    (last,) = glob.glob(str(tmp_path / "rsl_rl" / "quadcopter_blind_dagger_ppo" / "*" / "model_1.pt"))
    actor_state = torch.load(last, weights_only=True)["actor_state_dict"]
    assert int(actor_state["rnn.rnn.rate_normalizer.count"]) == count + 2 * 24 * 16  # continued from the student
    assert int(actor_state["rnn.rnn.rate_normalizer.count"]) == int(actor_state["obs_normalizer.count"])


def test_the_benchmarks_student_filter_is_the_tasks_gru_as_a_filter_model_in_both_stages(tmp_path, capsys, monkeypatch):
    import json

    from dagmix.algorithms import MixingDAggerPPO
    from dagmix.benchmarks import compare_dagger_ppo, compare_schedules
    from dagmix.benchmarks.tasks import get_task
    from dagmix.envs.task_configs import distill_train_cfg
    from dagmix.models import FilterRNNModel

    student = get_task("quadcopter_blind").train_cfg("filter")["student"]
    assert student == {**distill_train_cfg("quadcopter_blind")["student"], "class_name": "dagmix.models:FilterRNNModel"}
    with pytest.raises(SystemExit):
        compare_schedules.parse_args(["--task", "cue_doors", "--student", "filter"])  # an MLP student
    assert "cue_doors's student is 'MLPModel' with no GRU" in capsys.readouterr().err

    argv = [
        *("--task", "quadcopter_blind", "--seeds", "1", "--iterations", "3", "--student", "filter"),
        *("--num-envs", "8", "--steps-per-env", "4", "--eval-interval", "2", "--eval-episodes", "4"),
        *("--final-eval-episodes", "4", "--workers", "1", "--out-dir", str(tmp_path)),
        *("--env-overrides", "episode_length_s=1.0", "--schedules", "handoff"),
    ]
    actors = []
    load = MixingDAggerPPO._load_init_student
    monkeypatch.setattr(
        MixingDAggerPPO, "_load_init_student", lambda self, p: (actors.append(type(self.actor)), load(self, p))[1]
    )
    compare_dagger_ppo.main(argv)
    runs = tmp_path / "runs" / "handoff"
    stage = torch.load(runs / "seed0.distillation.pt", weights_only=True)
    assert "rnn.rnn.rate_normalizer.count" in stage["student_state_dict"]  # the distillation stage's student
    assert actors == [FilterRNNModel]  # and the actor it initialises
    assert json.loads((runs / "seed0.json").read_text())["config"]["student"] == "filter"


@pytest.mark.filterwarnings("ignore:The student takes over")
def test_replay_and_the_advisor_head_take_the_packed_state_and_the_actors_normalisers(tmp_path, monkeypatch):
    from dagmix import cli
    from dagmix.algorithms import MixingDAggerPPO

    common = ["--task", "quadcopter_blind", "--num_envs", "16", "--seed", "0", "--eval_interval", "0"]
    common += ["--final_eval_episodes", "0", "env.episode_length_s=1.0", "--log_root", str(tmp_path)]
    student = ["student.class_name=dagmix.models:FilterRNNModel", "student.filter_time_constants=[2,8]"]
    replay = ["algorithm.replay.iterations=2"]  # the aggregation replay stores the packed hidden state
    assert cli.main(["distill", *common, "--max_iterations", "3", *student, *replay]) == 0

    heads = []
    update = MixingDAggerPPO.update
    monkeypatch.setattr(MixingDAggerPPO, "update", lambda self: (heads.append(self), update(self))[1])
    actor = ["actor.class_name=dagmix.models:FilterRNNModel"]
    assert cli.main(["distill", "--algorithm", "dagger_ppo", *common, "--max_iterations", "2", *actor]) == 0
    alg = heads[-1]
    advisor = alg.guidance.advisor.model
    actor_model = alg.actor
    assert advisor.rnn.rnn.rate_normalizer is actor_model.rnn.rnn.rate_normalizer  # one set of statistics
    assert advisor.obs_normalizer is actor_model.obs_normalizer
    assert int(actor_model.rnn.rnn.rate_normalizer.count) == int(actor_model.obs_normalizer.count) == 2 * 24 * 16
    assert not any("normalizer" in k for k in alg.guidance.advisor.state_dict()["model"])
