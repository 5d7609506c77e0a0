"""Learning-rate schedule and weight averaging (EMA) of MixingDistillation: values, logging, checkpoints, resume."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from helpers import make_runner, rollout

from dagmix.algorithms import CHECKPOINT_KEY, compat
from dagmix.mixing.options import LearningRateScheduleConfig

NEEDS_MODELS = pytest.mark.skipif(
    compat.STUDENT_TEACHER_POLICY, reason="rsl-rl-lib 3.x: one StudentTeacher module, no weight averaging"
)


def _lr_series(runner, iterations: int) -> dict[int, float]:
    seen: dict[int, tuple[float, float]] = {}

    def record(it, metrics):
        seen[it] = (metrics["Distillation/learning_rate"], runner.alg.optimizer.param_groups[0]["lr"])

    runner.alg.iteration_callbacks.append(record)
    runner.learn(iterations)
    for it, (logged, used) in seen.items():
        assert logged == used, it  # the logged value is the optimizer's
    return {it: logged for it, (logged, _) in seen.items()}


# ------------------------------------------------------------------------------------------ learning rate
def test_learning_rate_values_in_closed_form():
    cos = LearningRateScheduleConfig("cosine", min_learning_rate=0.1, warmup_iterations=2)
    assert cos.learning_rate(1.0, 0, 12) == 0.5  # warmup: base * (it + 1) / W
    assert cos.learning_rate(1.0, 1, 12) == 1.0
    assert cos.learning_rate(1.0, 2, 12) == 1.0  # the decay starts at W
    assert cos.learning_rate(1.0, 7, 12) == pytest.approx(0.55)  # half way: (base + min) / 2
    assert cos.learning_rate(1.0, 12, 12) == pytest.approx(0.1)
    assert cos.learning_rate(1.0, 100, 12) == pytest.approx(0.1)  # kept after the end
    lin = LearningRateScheduleConfig("linear", min_learning_rate=0.0)
    assert [lin.learning_rate(2.0, i, 4) for i in range(6)] == [2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    const = LearningRateScheduleConfig("constant", warmup_iterations=4)
    assert [const.learning_rate(1.0, i, None) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert not LearningRateScheduleConfig().active and const.active and not const.decays
    # a held start: S = W + f * (E - W) = 2 + 0.5 * 8 = 6; the rate holds until S, then decays over (S, E)
    held = LearningRateScheduleConfig(
        "linear", min_learning_rate=0.0, warmup_iterations=2, learning_rate_decay_start_fraction=0.5
    )
    assert [held.learning_rate(1.0, i, 10) for i in range(12)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0], abs=1e-12
    )
    held_cos = LearningRateScheduleConfig("cosine", min_learning_rate=0.1, learning_rate_decay_start_fraction=2 / 3)
    assert held_cos.learning_rate(1.0, 200, 300) == pytest.approx(1.0)
    assert held_cos.learning_rate(1.0, 250, 300) == pytest.approx(0.55)  # half way through the last third
    assert held_cos.learning_rate(1.0, 300, 300) == pytest.approx(0.1)


def test_cosine_schedule_is_set_and_logged_every_iteration(tmp_path, teacher_path):
    algo = {"learning_rate_schedule": "cosine", "min_learning_rate": 1e-4, "warmup_iterations": 1}
    r = make_runner(tmp_path, teacher_path, algo)
    series = _lr_series(r, 5)  # the end: this learn() call's end, iteration 5
    expected = [1e-3 * 1.0] + [1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * (i - 1) / 4)) for i in range(1, 5)]
    assert series == pytest.approx(dict(enumerate(expected)))
    assert r.alg.learning_rate == series[4]  # rsl_rl's logger reads alg.learning_rate (Loss/learning_rate)


def test_constant_schedule_leaves_the_optimizer_alone_and_logs_its_rate(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, None)
    assert _lr_series(r, 2) == {0: 1e-3, 1: 1e-3}


def test_stock_runner_decays_over_max_iterations(tmp_path, teacher_path):
    if not compat.RESOLVES_CLASS_PATHS:
        pytest.skip("rsl-rl-lib 3.0.1's stock runner cannot build MixingDistillation")
    algo = {"class_name": "dagmix.algorithms:MixingDistillation", "learning_rate_schedule": "linear"}
    r = make_runner(tmp_path, teacher_path, algo, runner="stock", max_iterations=4)
    if compat.STUDENT_TEACHER_POLICY:  # the 3.x runner builds the algorithm itself and never passes max_iterations
        with pytest.raises(ValueError, match=r"needs the run length.*learning_rate_iterations=N"):
            r.learn(4)
        return
    assert _lr_series(r, 4) == pytest.approx({0: 1e-3, 1: 0.75e-3, 2: 0.5e-3, 3: 0.25e-3})


def test_explicit_learning_rate_iterations_and_resume_continue_the_schedule_exactly(tmp_path, teacher_path):
    algo = {"learning_rate_schedule": "cosine", "min_learning_rate": 1e-5}
    a = make_runner(tmp_path / "a", teacher_path, algo, log=True, save_interval=1)
    full = _lr_series(a, 6)  # end 6
    b = make_runner(tmp_path / "b", None, algo)
    b.load(str(tmp_path / "a" / "logs" / "model_2.pt"))
    resumed = _lr_series(b, 4)  # rsl_rl's resume: iterations 2..5 (the remaining ones), end 2 + 4 = 6
    assert resumed == {it: full[it] for it in range(2, 6)}
    c = make_runner(tmp_path / "c", teacher_path, {**algo, "learning_rate_iterations": 6})
    c.learn(2)
    assert _lr_series(c, 4) == {it: full[it] for it in range(1, 5)}  # a second learn(): it repeats iteration 1


@pytest.mark.parametrize(
    ("algo", "match"),
    [
        ({"learning_rate_schedule": "exponential"}, r"learning_rate_schedule='exponential' is not one of 'constant'"),
        ({"learning_rate_schedule": "cosine", "min_learning_rate": 0.1}, r"min_learning_rate=0.1 is above"),
        ({"min_learning_rate": -1.0}, r"min_learning_rate=-1.0 must be a finite number >= 0"),
        ({"warmup_iterations": 1.5}, r"warmup_iterations=1.5 must be an int >= 0"),
        ({"warmup_iterations": 5, "learning_rate_iterations": 5}, r"learning_rate_iterations=5 must be an int >"),
        ({"learning_rate_schedul": "cosine"}, r"Did you mean 'learning_rate_schedule'"),
        ({"learning_rate_decay_start_fraction": 1.0}, r"learning_rate_decay_start_fraction=1.0 must be a number in"),
        ({"learning_rate_decay_start_fraction": -0.1}, r"learning_rate_decay_start_fraction=-0.1 must be a number"),
        ({"learning_rate_decay_start_fraction": True}, r"learning_rate_decay_start_fraction=True must be a number"),
        ({"ema_decay": 1.0}, r"ema_decay=1.0 must be a number in \(0, 1\)"),
        ({"ema_decay": 0}, r"ema_decay=0 must be a number in \(0, 1\)"),
        ({"ema_decay": True}, r"ema_decay=True"),
        ({"ema_decy": 0.9}, r"Did you mean 'ema_decay'"),
    ],
)
def test_bad_keys_fail_before_training(tmp_path, algo, match):
    with pytest.raises(ValueError, match=match):
        make_runner(tmp_path, None, algo)


def test_decaying_schedule_without_a_run_length_is_an_error(tmp_path, teacher_path):
    if not compat.RESOLVES_CLASS_PATHS:
        pytest.skip("rsl-rl-lib 3.0.1's stock runner cannot build MixingDistillation")
    algo = {"class_name": "dagmix.algorithms:MixingDistillation", "learning_rate_schedule": "cosine"}
    r = make_runner(tmp_path, teacher_path, algo, runner="stock", max_iterations=None)
    with pytest.raises(ValueError, match=r"needs the run length.*learning_rate_iterations=N.*max_iterations"):
        r.learn(2)
    algo["learning_rate_iterations"] = 3
    ok = make_runner(tmp_path, teacher_path, algo, runner="stock", max_iterations=None)
    assert _lr_series(ok, 3) == pytest.approx({0: 1e-3, 1: 0.75e-3, 2: 0.25e-3})


# ------------------------------------------------------------------------------------------ weight averaging
@NEEDS_MODELS
def test_average_matches_a_hand_computed_ema_of_parameters_and_buffers(tmp_path, teacher_path):
    decay = 0.6
    r = make_runner(tmp_path, teacher_path, {"ema_decay": decay, "gradient_length": 2})
    alg = r.alg
    expected = {k: v.clone() for k, v in alg.student.state_dict().items()}  # the average starts at the init
    steps = []
    alg.optimizer.register_step_post_hook(lambda *_: steps.append(copy.deepcopy(alg.student.state_dict())))
    r.learn(3)  # 3 iterations x 4 gradient steps; the normalizer changes between iterations
    assert len(steps) == 12 and alg.ema.num_updates == 12
    for raw in steps:
        for k, v in raw.items():
            expected[k] = decay * expected[k] + (1 - decay) * v if v.is_floating_point() else v.clone()
    for k in [k for k in expected if k.endswith("._var")]:  # the normaliser's variance: its averaged std squared
        expected[k] = expected[k.removesuffix("_var") + "_std"].square()
    averaged = alg.get_policy().state_dict()
    assert alg.get_policy() is alg.ema.model and alg.get_policy() is not alg.student
    assert any(k.endswith("obs_normalizer._var") for k in averaged)
    for k, v in averaged.items():
        assert torch.allclose(v, expected[k], rtol=1e-5, atol=1e-7), k
    raw = alg.student.state_dict()
    assert not torch.allclose(raw["mlp.0.weight"], averaged["mlp.0.weight"])  # training continues on raw weights


@NEEDS_MODELS
def test_checkpoint_student_is_the_average_and_stock_rsl_rl_loads_it(tmp_path, teacher_path):
    a = make_runner(tmp_path / "a", teacher_path, {"ema_decay": 0.5}, log=True)
    a.learn(3)
    path = str(tmp_path / "a" / "logs" / "model_2.pt")
    ckpt = torch.load(path, weights_only=True)
    averaged, raw = a.alg.ema.model.state_dict(), a.alg.student.state_dict()
    for k in averaged:
        assert torch.equal(ckpt["student_state_dict"][k], averaged[k])
        assert torch.equal(ckpt[CHECKPOINT_KEY]["raw_student_state_dict"][k], raw[k])
    stock = make_runner(tmp_path / "s", None, {"class_name": "Distillation"}, runner="stock")
    stock.load(path)
    obs = stock.env.get_observations()
    with torch.no_grad():
        assert torch.equal(stock.get_inference_policy()(obs), a.get_inference_policy()(obs))
        assert not torch.equal(stock.get_inference_policy()(obs), a.alg.student(obs))


@NEEDS_MODELS
def test_resume_continues_raw_weights_optimizer_and_average_bit_for_bit(tmp_path, teacher_path):
    algo = {"ema_decay": 0.7, "learning_rate_schedule": "cosine", "learning_rate_iterations": 6, "gradient_length": 4}
    a = make_runner(tmp_path / "a", teacher_path, algo)
    a.alg.train_mode()
    for _ in range(2):
        rollout(a.alg, a.env, 8)
        a.alg.update()
    saved = {**a.alg.save(), "iter": a.alg.iteration, "infos": None}
    torch.save(saved, tmp_path / "ckpt.pt")
    env_b = copy.deepcopy(a.env)
    b = make_runner(tmp_path / "b", None, algo)
    b.load(str(tmp_path / "ckpt.pt"))
    b.alg.train_mode()
    assert b.alg.iteration == a.alg.iteration == 2
    for alg, env in ((a.alg, a.env), (b.alg, env_b)):
        torch.manual_seed(11)  # the student's action noise
        for _ in range(2):
            rollout(alg, env, 8)
            alg.update()
    for name, x, y in (
        ("raw", a.alg.student.state_dict(), b.alg.student.state_dict()),
        ("average", a.alg.ema.model.state_dict(), b.alg.ema.model.state_dict()),
    ):
        for k in x:
            assert torch.equal(x[k], y[k]), (name, k)
    sa, sb = a.alg.optimizer.state_dict(), b.alg.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i in sa["state"]:
        for k in sa["state"][i]:
            assert torch.equal(sa["state"][i][k], sb["state"][i][k])
    assert a.alg.ema.num_updates == b.alg.ema.num_updates == 8


@NEEDS_MODELS
def test_recurrent_average_has_its_own_hidden_state(tmp_path, teacher_path):
    r = make_runner(tmp_path, teacher_path, {"ema_decay": 0.9}, student="gru")
    r.learn(2)  # rsl_rl's runner logs get_policy().output_std every iteration
    policy = r.alg.get_policy()
    assert r.alg.student.get_hidden_state() is not None and policy.get_hidden_state() is None
    obs = r.env.get_observations()
    with torch.no_grad():
        policy(obs)
    assert not torch.equal(policy.get_hidden_state(), r.alg.student.get_hidden_state())
    assert torch.equal(policy.output_std, r.alg.student.output_std)  # the rollout's action noise, for the logger


@NEEDS_MODELS
def test_resuming_an_averaged_checkpoint_without_averaging_continues_the_raw_weights(tmp_path, teacher_path):
    a = make_runner(tmp_path / "a", teacher_path, {"ema_decay": 0.5}, log=True)
    a.learn(2)
    b = make_runner(tmp_path / "b", None, None)
    with pytest.warns(UserWarning, match="continues from the raw"):
        b.load(str(tmp_path / "a" / "logs" / "model_1.pt"))
    for k, v in a.alg.student.state_dict().items():
        assert torch.equal(b.alg.student.state_dict()[k], v)
    c = make_runner(tmp_path / "c", teacher_path, {"ema_decay": 0.5})  # an average started from a plain checkpoint
    plain = make_runner(tmp_path / "p", teacher_path, None, log=True)
    plain.learn(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c.load(str(tmp_path / "p" / "logs" / "model_0.pt"))
    for k, v in plain.alg.student.state_dict().items():
        assert torch.equal(c.alg.ema.model.state_dict()[k], v) and torch.equal(c.alg.student.state_dict()[k], v)


def test_weight_averaging_is_refused_on_rsl_rl_3(tmp_path):
    if not compat.STUDENT_TEACHER_POLICY:
        pytest.skip("rsl-rl-lib >= 4 supports weight averaging")
    with pytest.raises(ValueError, match=r"ema_decay needs rsl-rl-lib >= 4"):
        make_runner(tmp_path, None, {"ema_decay": 0.9})
