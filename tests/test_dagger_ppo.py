"""MixingDAggerPPO under rsl_rl's stock OnPolicyRunner: PPO and distillation as its two ends, off-policy masking,
schedules, logging, resume and errors."""

from __future__ import annotations

import copy
import glob
import shutil

import pytest
import torch
from helpers import make_env, make_runner

from dagmix.algorithms import CHECKPOINT_KEY, MixingDAggerPPO, compat
from dagmix.algorithms.dagger_ppo import DRIVEN_KEY, LABEL_KEY
from dagmix.mixing import CoefficientSchedule

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")
CLASS = "dagmix.algorithms:MixingDAggerPPO"
MLP = {"class_name": "MLPModel", "hidden_dims": [32, 32], "activation": "elu"}


def model(kind: str = "mlp", std: float | None = 0.1, normalize: bool = True) -> dict:
    cfg: dict = {**MLP, "obs_normalization": normalize}
    if std is not None:
        cfg["distribution_cfg"] = {"class_name": "GaussianDistribution", "init_std": std}
    if kind in ("gru", "lstm"):
        cfg.update(class_name="RNNModel", rnn_type=kind, rnn_hidden_dim=16, rnn_num_layers=1)
    return cfg


def train_cfg(
    algorithm=None, actor="mlp", teacher="mlp", class_name=CLASS, steps=8, actor_normalize=True, **kw
) -> dict:
    cfg = {
        "num_steps_per_env": steps,
        "max_iterations": 4,
        "save_interval": 1000,
        "seed": 1,
        "obs_groups": {"actor": ["policy"], "critic": ["teacher"], "teacher": ["teacher"]},
        "algorithm": {
            "class_name": class_name,
            "num_learning_epochs": 2,
            "num_mini_batches": 2,
            "learning_rate": 1e-3,
            "rnd_cfg": None,  # rsl-rl-lib 5.4's runner reads the key
            **(algorithm or {}),
        },
        "actor": model(actor, normalize=actor_normalize),
        "critic": model(std=None, normalize=False),
        "logger": "tensorboard",
        **kw,
    }
    if class_name == CLASS:
        cfg["teacher"] = model(teacher, std=None, normalize=False)
    return cfg


def save_teacher(path, kind: str = "mlp") -> str:
    """A PPO checkpoint (random weights) for the teacher section of ``train_cfg``."""
    from rsl_rl.utils import resolve_callable

    env = make_env()
    with torch.random.fork_rng():
        torch.manual_seed(123)
        cfg = model(kind, std=None, normalize=False)
        cls = resolve_callable(cfg.pop("class_name"))
        teacher = cls(env.get_observations(), {"teacher": ["teacher"]}, "teacher", env.num_actions, **cfg)
    torch.save({"actor_state_dict": teacher.state_dict(), "iter": 0, "infos": None}, path)
    return str(path)


@pytest.fixture
def ppo_teacher(tmp_path):
    return save_teacher(tmp_path / "ppo_teacher.pt")


def runner(tmp_path, teacher_path, algorithm=None, log=False, seed=0, num_envs=16, **kw):
    from rsl_rl.runners import OnPolicyRunner

    cfg = train_cfg(algorithm, **kw)
    env = make_env(num_envs=num_envs, seed=cfg["seed"])
    torch.manual_seed(seed)
    r = OnPolicyRunner(env, cfg, str(tmp_path / "logs") if log else None, "cpu")
    if teacher_path is not None:
        r.load(teacher_path)
    return r


def collect(alg, env, steps):
    """One rollout and the returns, as the runner does."""
    alg.train_mode()
    obs = env.get_observations()
    with torch.inference_mode():
        for _ in range(steps):
            obs, rewards, dones, extras = env.step(alg.act(obs))
            alg.process_env_step(obs, rewards, dones, extras)
        alg.compute_returns(obs)


def grads_of_next_step(alg, params):
    """Run alg.update() and return the gradients of ``params`` at its (first) optimizer step."""
    captured = []
    step = alg.optimizer.step

    def record(*a, **k):
        if not captured:
            captured.append([None if p.grad is None else p.grad.detach().clone() for p in params])
        return step(*a, **k)

    alg.optimizer.step = record
    try:
        alg.update()
    finally:
        alg.optimizer.step = step
    return captured[0]


# ----------------------------------------------------------------------------------------------- the stock runner
@pytest.mark.parametrize("actor", ["mlp", "gru"])
def test_stock_on_policy_runner_runs_it_and_logs_the_scalars(tmp_path, ppo_teacher, actor):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    algo = {
        "mixing": {"schedule": "two_stage", "phase1_iterations": 2},
        "imitation_coef": {"schedule": "linear", "start": 1.0, "end": 0.0, "iterations": 4, "scale": 2.0},
        "ppo_coef": {"schedule": "piecewise_linear", "points": [[0, 0.0], [2, 1.0]]},
    }
    r = runner(tmp_path, ppo_teacher, algo, log=True, actor=actor)
    assert isinstance(r.alg, MixingDAggerPPO) and r.alg.teacher_loaded
    r.learn(4)
    r.logger.writer.flush()
    acc = EventAccumulator(glob.glob(str(tmp_path / "logs"))[0])
    acc.Reload()

    def series(tag):
        return {e.step: round(e.value, 6) for e in acc.Scalars(tag)}

    assert series("Distillation/beta") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    assert series("Distillation/teacher_fraction") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    assert series("Distillation/imitation_coef") == {0: 2.0, 1: 1.5, 2: 1.0, 3: 0.5}
    assert series("Distillation/ppo_coef") == {0: 0.0, 1: 0.5, 2: 1.0, 3: 1.0}
    assert {"Loss/imitation", "Loss/surrogate", "Loss/value", "Loss/entropy"} <= set(acc.Tags()["scalars"])
    assert all(v == v and v >= 0 for v in series("Loss/imitation").values())


def test_recurrent_teacher_labels_follow_its_hidden_state(tmp_path):
    teacher_path = save_teacher(tmp_path / "gru_teacher.pt", "gru")
    r = runner(tmp_path, teacher_path, {"mixing": {"schedule": "constant", "beta": 0.5}}, actor="gru", teacher="gru")
    alg = r.alg
    collect(alg, r.env, 8)
    replay = copy.deepcopy(alg.teacher)
    replay.reset(hidden_state=torch.zeros_like(replay.get_hidden_state()))
    st = alg.storage
    with torch.inference_mode():
        for t in range(8):
            torch.testing.assert_close(replay(st.observations[t]), st.observations[LABEL_KEY][t])
            replay.reset(st.dones[t].view(-1))
    assert bool(st.dones.any())  # episodes of 5 steps: the replay went through resets
    alg.update()
    r.learn(2)


# ----------------------------------------------------------------------------------------------- the two ends
@pytest.mark.parametrize("schedule", ["adaptive", "fixed"])  # at a fixed rate the default rate stays rsl_rl's too
@pytest.mark.parametrize("actor", ["mlp", "gru"])
def test_imitation_coef_0_and_beta_0_train_bit_for_bit_as_stock_ppo(tmp_path, ppo_teacher, actor, schedule):
    # seeded once before construction, as the CLI does: building the teacher must not draw random numbers
    stock = runner(tmp_path / "s", None, {"schedule": schedule}, class_name="PPO", actor=actor, seed=7)
    stock.learn(4)  # the whole run (max_iterations 4): a held decay would change iteration 3's rate
    ours = runner(tmp_path / "o", ppo_teacher, {"imitation_coef": 0.0, "schedule": schedule}, actor=actor, seed=7)
    ours.learn(4)
    assert not ours.alg.lr_schedule.active
    assert type(stock.alg).__name__ == "PPO" and ours.alg.beta_schedule.beta(0) == 0.0
    for a, b in [(stock.alg.actor, ours.alg.actor), (stock.alg.critic, ours.alg.critic)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert stock.alg.learning_rate == ours.alg.learning_rate
    # and the imitation term does change the weights
    other = runner(tmp_path / "x", ppo_teacher, {"imitation_coef": 1.0}, actor=actor, seed=7)
    other.learn(3)
    assert not torch.equal(other.alg.actor.mlp[0].weight, ours.alg.actor.mlp[0].weight)


def test_ppo_coef_0_and_beta_0_give_mixing_distillation_gradients(tmp_path, ppo_teacher, teacher_path):
    """One mini-batch and one epoch over the whole rollout against Distillation's gradient_length = all steps.

    Distillation sums the per-step MSE (each a mean over envs and actions) over the ``steps`` steps before its
    gradient step, i.e. ``steps`` times the mean over the rollout, which the imitation term is. Tolerance: float32
    sums in another order, rtol 1e-5 / atol 1e-7.
    """
    steps = 8
    algo = {"ppo_coef": 0.0, "imitation_coef": 1.0, "num_mini_batches": 1, "num_learning_epochs": 1}
    algo["max_grad_norm"] = 1e9
    algo["imitation_balance"] = "fixed"  # every state at weight 1, as distillation (the advisor weighs per state)
    ours = runner(tmp_path / "o", ppo_teacher, algo, steps=steps)
    collect(ours.alg, ours.env, steps)
    distill = make_runner(tmp_path / "d", teacher_path, {"gradient_length": steps, "max_grad_norm": None})
    student = distill.alg.student
    student.load_state_dict(ours.alg.actor.state_dict())  # same weights and normalizer, after the rollout
    st, dst = ours.alg.storage, distill.alg.storage
    for key in ("policy", "teacher"):
        dst.observations[key].copy_(st.observations[key])
    dst.privileged_actions.copy_(st.observations[LABEL_KEY])
    dst.dones.copy_(st.dones)
    dst.step = steps
    distill.alg.train_mode()
    g_ours = grads_of_next_step(ours.alg, list(ours.alg.actor.parameters()))
    g_dist = grads_of_next_step(distill.alg, list(student.parameters()))
    assert len(g_ours) == len(g_dist)
    for a, b in zip(g_ours, g_dist, strict=True):
        assert (a is None) == (b is None)  # the std gets no gradient from either
        if a is not None:
            torch.testing.assert_close(a * steps, b, rtol=1e-5, atol=1e-7)
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in g_ours) >= 6


# ----------------------------------------------------------------------------------------------- off-policy steps
# rsl-rl-lib 5.4 updates the normalizer on every step: without one, the rollout's actor is the one after it
def test_teacher_driven_steps_store_the_executed_action_and_the_students_log_prob(tmp_path, ppo_teacher):
    algo = {"mixing": {"schedule": "constant", "beta": 0.5}}
    r = runner(tmp_path, ppo_teacher, algo, num_envs=32, actor_normalize=False)
    alg = r.alg
    collect(alg, r.env, 8)
    st = alg.storage
    driven = st.observations[DRIVEN_KEY].squeeze(-1).bool()
    assert 0 < int(driven.sum()) < driven.numel()
    with torch.inference_mode():
        teacher_actions = alg.teacher(st.observations)
        alg.actor(st.observations, stochastic_output=True)
        log_prob = alg.actor.get_output_log_prob(st.actions)
    torch.testing.assert_close(st.actions[driven], teacher_actions[driven])
    assert not torch.allclose(st.actions[~driven], teacher_actions[~driven])
    torch.testing.assert_close(st.actions_log_prob.squeeze(-1), log_prob, rtol=1e-5, atol=1e-5)


def _actor_grads_with_advantages(alg, snapshot, change):
    actor, critic, opt, adv = snapshot
    alg.actor.load_state_dict(actor)
    alg.critic.load_state_dict(critic)
    alg.optimizer.load_state_dict(opt)
    alg.storage.advantages = adv.clone()  # a normal tensor (the rollout's is an inference tensor)
    change(alg.storage.advantages)
    alg.storage.step = alg.storage.num_transitions_per_env
    torch.manual_seed(0)  # the same mini-batch permutation
    return grads_of_next_step(alg, list(alg.actor.parameters()))


def test_teacher_driven_samples_leave_the_surrogate(tmp_path, ppo_teacher):
    algo = {"mixing": {"schedule": "constant", "beta": 0.5}, "imitation_coef": 0.0, "entropy_coef": 0.0}
    algo.update(num_mini_batches=1, num_learning_epochs=1)
    r = runner(tmp_path, ppo_teacher, algo, num_envs=32, actor_normalize=False)
    alg = r.alg
    collect(alg, r.env, 8)
    driven = alg.storage.observations[DRIVEN_KEY].bool()  # (steps, envs, 1), like the advantages
    snap = (
        copy.deepcopy(alg.actor.state_dict()),
        copy.deepcopy(alg.critic.state_dict()),
        copy.deepcopy(alg.optimizer.state_dict()),
        alg.storage.advantages.clone(),
    )
    base = _actor_grads_with_advantages(alg, snap, lambda a: None)
    on_teacher = _actor_grads_with_advantages(alg, snap, lambda a: a.add_(torch.where(driven, 5.0, 0.0)))
    on_student = _actor_grads_with_advantages(alg, snap, lambda a: a.add_(torch.where(driven, 0.0, 5.0)))
    assert all(torch.equal(a, b) for a, b in zip(base, on_teacher, strict=True) if a is not None)
    assert not all(torch.equal(a, b) for a, b in zip(base, on_student, strict=True) if a is not None)


def test_all_teacher_driven_gives_no_policy_gradient(tmp_path, ppo_teacher):
    algo = {"mixing": {"schedule": "teacher_only"}, "imitation_coef": 0.0, "entropy_coef": 0.0}
    r = runner(tmp_path, ppo_teacher, algo)
    collect(r.alg, r.env, 8)
    assert bool(r.alg.storage.observations[DRIVEN_KEY].all())
    grads = grads_of_next_step(r.alg, list(r.alg.actor.parameters()))
    assert all(g is None or bool((g == 0).all()) for g in grads)


@pytest.mark.parametrize("loss", ["mse", "huber", "gaussian_nll"])
def test_logged_imitation_loss_is_the_chosen_loss(tmp_path, ppo_teacher, loss):
    algo = {"imitation_loss": loss, "num_mini_batches": 1, "num_learning_epochs": 1, "ppo_coef": 0.0}
    r = runner(tmp_path, ppo_teacher, algo)
    alg = r.alg
    collect(alg, r.env, 8)
    st = alg.storage
    with torch.inference_mode():
        alg.actor(st.observations, stochastic_output=True)
        labels = st.observations[LABEL_KEY]
        expected = {
            "mse": torch.nn.functional.mse_loss(alg.actor.output_mean, labels),
            "huber": torch.nn.functional.huber_loss(alg.actor.output_mean, labels),
            "gaussian_nll": -alg.actor.get_output_log_prob(labels).mean(),
        }[loss]
    assert alg.update()["imitation"] == pytest.approx(float(expected), rel=1e-5)


# ----------------------------------------------------------------------------------------------- schedules
def test_coefficient_schedules_at_given_iterations():
    assert CoefficientSchedule.from_config("c", 2.5).value(0) == 2.5
    assert CoefficientSchedule.from_config("c", 0).value(100) == 0.0
    two = CoefficientSchedule.from_config("c", {"schedule": "two_stage", "phase1_iterations": 3, "scale": 4.0})
    assert [two(i) for i in range(5)] == [4.0, 4.0, 4.0, 0.0, 0.0]
    lin = CoefficientSchedule.from_config("c", {"schedule": "linear", "start": 0.0, "end": 1.0, "iterations": 4})
    assert [lin(i) for i in (0, 2, 4, 9)] == [0.0, 0.5, 1.0, 1.0]
    pw = CoefficientSchedule.from_config("c", {"schedule": "piecewise_linear", "points": [[2, 1.0], [6, 0.0]]})
    assert [pw(i) for i in (0, 2, 4, 6, 7)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert pw.describe() == "PiecewiseLinearSchedule(points=[[2, 1.0], [6, 0.0]])"
    assert CoefficientSchedule.from_config("c", 3.0).describe() == "3.0"


def test_coefficients_follow_the_runner_iteration(tmp_path, ppo_teacher):
    algo = {
        "imitation_coef": {"schedule": "exponential", "decay": 0.5, "cutoff": 0.2, "scale": 8.0},
        "ppo_coef": {"schedule": "step", "phase1_iterations": 2, "scale": 3.0},
        "mixing": {"schedule": "linear", "start": 1.0, "end": 0.0, "iterations": 4},
    }
    r = runner(tmp_path, ppo_teacher, algo)
    seen = {}
    losses = {}
    r.alg.iteration_callbacks.append(lambda it, m: seen.setdefault(it, m) and None)
    r.alg.iteration_callbacks.append(lambda it, m, loss: losses.setdefault(it, loss) and None)  # as in distillation
    r.learn(5)
    assert sorted(losses) == list(range(5)) and {"value", "surrogate", "imitation"} <= set(losses[4])
    assert [seen[i]["Distillation/imitation_coef"] for i in range(5)] == [8.0, 4.0, 2.0, 0.0, 0.0]
    assert [seen[i]["Distillation/ppo_coef"] for i in range(5)] == [3.0, 3.0, 0.0, 0.0, 0.0]
    assert [seen[i]["Distillation/beta"] for i in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert r.alg.coefficients_at(1) == {"beta": 0.75, "imitation_coef": 4.0, "ppo_coef": 3.0}


# ----------------------------------------------------------------------------------------------- checkpoints
def test_resume_continues_schedules_masks_teacher_and_iteration(tmp_path, ppo_teacher):
    algo = {
        "mixing": {"schedule": "constant", "beta": 0.5, "granularity": "step"},
        "imitation_coef": {"schedule": "linear", "start": 1.0, "end": 0.0, "iterations": 8},
    }
    a = runner(tmp_path / "a", ppo_teacher, algo, log=True, save_interval=1)
    a.learn(2)  # iterations 0, 1
    gen_after_1 = a.alg.mixing_policy.generator.get_state().clone()
    saved = str(tmp_path / "model_1.pt")
    shutil.copy(tmp_path / "a" / "logs" / "model_1.pt", saved)
    ckpt = torch.load(saved, weights_only=True)
    assert ckpt["iter"] == 1 and ckpt[CHECKPOINT_KEY]["algorithm"] == "MixingDAggerPPO"

    b = runner(tmp_path / "b", None, algo)
    b.load(saved)
    assert b.current_learning_iteration == 1 and b.alg.iteration == 1 and b.alg.teacher_loaded
    assert torch.equal(b.alg.mixing_policy.generator.get_state(), gen_after_1)
    for k, v in a.alg.teacher.state_dict().items():
        assert torch.equal(b.alg.teacher.state_dict()[k], v)
    for k, v in a.alg.actor.state_dict().items():
        assert torch.equal(b.alg.actor.state_dict()[k], v)
    seen = {}
    b.alg.iteration_callbacks.append(lambda it, m: seen.setdefault(it, m) and None)
    b.learn(1)  # rsl_rl resumes at the saved iteration 1
    assert seen[1]["Distillation/imitation_coef"] == pytest.approx(1.0 - 1 / 8)
    c = runner(tmp_path / "c", ppo_teacher, algo)
    c.learn(3)  # iterations 0, 1, 2: the third rollout draws the masks of b's first one (step granularity)
    assert torch.equal(b.alg.storage.observations[DRIVEN_KEY], c.alg.storage.observations[DRIVEN_KEY])


def test_resume_with_another_schedule_warns_and_uses_the_configured_one(tmp_path, ppo_teacher):
    a = runner(tmp_path / "a", ppo_teacher, {"ppo_coef": 0.5}, log=True, save_interval=1)
    a.learn(1)
    b = runner(tmp_path / "b", None, {"ppo_coef": 0.25})
    with pytest.warns(UserWarning, match="trained with ppo_coef 0.5; this run uses 0.25"):
        b.load(str(tmp_path / "a" / "logs" / "model_0.pt"))
    assert b.alg.coefficients_at(0)["ppo_coef"] == 0.25


def test_checkpoint_loads_into_stock_ppo(tmp_path, ppo_teacher):
    a = runner(tmp_path / "a", ppo_teacher, {"mixing": {"schedule": "two_stage", "phase1_iterations": 1}}, log=True)
    a.learn(2)
    stock = runner(tmp_path / "s", None, class_name="PPO")
    stock.load(glob.glob(str(tmp_path / "a" / "logs" / "model_1.pt"))[0])
    assert stock.current_learning_iteration == 1
    assert torch.equal(stock.alg.actor.mlp[0].weight, a.alg.actor.mlp[0].weight)


def test_init_student_loads_a_distillation_student(tmp_path, ppo_teacher, teacher_path):
    d = make_runner(tmp_path / "d", teacher_path, None)
    d.learn(1)
    path = str(tmp_path / "distilled.pt")
    torch.save({**d.alg.save(), "iter": 0, "infos": None}, path)
    r = runner(tmp_path, ppo_teacher, {"init_student": path})
    for k, v in d.alg.student.state_dict().items():
        assert torch.equal(r.alg.actor.state_dict()[k], v)
    with pytest.raises(ValueError, match="no 'student_state_dict'"):
        runner(tmp_path, None, {"init_student": ppo_teacher})
    with pytest.raises(ValueError, match="pass it as init_student"):
        runner(tmp_path, path)  # a distillation checkpoint is no teacher


# ----------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("algo", "match"),
    [
        ({"imitation_coeff": 1.0}, "Did you mean 'imitation_coef'"),
        ({"imitation_loss": "l2"}, "imitation_loss='l2' is not one of 'mse', 'huber', 'gaussian_nll'"),
        ({"ppo_coef": -1.0}, r"ppo_coef=-1.0 must be a finite number >= 0"),
        ({"imitation_coef": {"schedule": "linear", "iterations": 5, "scale": -2}}, "imitation_coef.scale=-2"),
        ({"imitation_coef": {"start": 1.0}}, "has no 'schedule'"),
        ({"imitation_coef": {"schedule": "lineer"}}, "imitation_coef.schedule='lineer' is not one of"),
        ({"ppo_coef": {"schedule": "linear", "iters": 5}}, r"Unknown key\(s\) \['iters'\] for ppo_coef.schedule"),
        ({"ppo_coef": {"schedule": "loss_triggered", "threshold": 0.1, "deadline": 9}}, "adaptive"),
        ({"mixing": {"schedule": "loss_triggered", "threshold": 0.1, "deadline": 9}}, "adaptive"),
        ({"mixing": {"schedule": "constant", "beta": 1.5}}, r"outside \[0, 1\]"),
        ({"symmetry_cfg": {"use_data_augmentation": True}}, "symmetry_cfg is not supported"),
    ],
)
def test_bad_keys_raise_with_the_fix(tmp_path, algo, match):
    with pytest.raises(ValueError, match=match):
        runner(tmp_path, None, algo)


def test_missing_teacher_section_and_teacher_raise(tmp_path):
    from rsl_rl.runners import OnPolicyRunner

    cfg = train_cfg()
    del cfg["teacher"]
    with pytest.raises(ValueError, match="needs a 'teacher' model section"):
        OnPolicyRunner(make_env(), cfg, None, "cpu")
    r = runner(tmp_path, None)
    with pytest.raises(ValueError, match="Teacher model parameters not loaded"):
        r.learn(1)


def test_refused_clearly_without_rsl_rl_5(monkeypatch):
    monkeypatch.setattr(compat, "PPO_WITH_MODELS", False)
    with pytest.raises(ValueError, match="MixingDAggerPPO needs rsl-rl-lib 5.4.2-5.5.x"):
        MixingDAggerPPO(None, None, None)
