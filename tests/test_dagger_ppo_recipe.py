"""MixingDAggerPPO's teacher-guided recipe under the stock runner: advisor weights, the warm-up, the hand-off."""

from __future__ import annotations

import math
import re
import shutil

import pytest
import torch
from helpers import make_env, make_runner
from test_dagger_ppo import collect, grads_of_next_step, runner, save_teacher

from dagmix.algorithms import CHECKPOINT_KEY, compat
from dagmix.algorithms.dagger_ppo import WEIGHT_KEY

pytestmark = pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")


@pytest.fixture
def ppo_teacher(tmp_path):
    return save_teacher(tmp_path / "ppo_teacher.pt")


def _distilled(tmp_path, teacher_path) -> str:
    d = make_runner(tmp_path / "d", teacher_path, None)
    d.learn(1)
    path = str(tmp_path / "distilled.pt")
    torch.save({**d.alg.save(), "iter": 0, "infos": None}, path)
    return path


def test_the_defaults_are_the_recipe_and_log_its_scalars(tmp_path, ppo_teacher):
    r = runner(tmp_path, ppo_teacher)
    g = r.alg.guidance
    assert g.active and g.advisor is not None and not g.warmup.active  # no init_student: no warm-up
    seen = {}
    r.alg.iteration_callbacks.append(lambda it, m: seen.setdefault(it, m) and None)
    r.learn(2)
    for it in (0, 1):
        assert 0.0 <= seen[it]["Distillation/imitation_weight"] <= 1.0
        assert seen[it]["Distillation/advisor_distance"] >= 0.0
        assert seen[it]["Distillation/explained_variance"] <= 1.0
        assert "Distillation/ppo_warmup" not in seen[it]


def test_advisor_weights_are_stored_per_sample_and_weigh_the_surrogate(tmp_path, ppo_teacher):
    algo = {"num_mini_batches": 1, "num_learning_epochs": 1, "imitation_coef": 0.0, "ppo_coef": 1.0}
    algo["max_grad_norm"] = 1e9  # no clipping: it would rescale the two gradients differently
    plain = runner(tmp_path / "p", ppo_teacher, {**algo, "imitation_balance": "fixed"})
    advised = runner(tmp_path / "a", ppo_teacher, {**algo, "imitation_coef": {"schedule": "constant", "beta": 1e-12}})
    advised.alg.actor.load_state_dict(plain.alg.actor.state_dict())
    advised.alg.critic.load_state_dict(plain.alg.critic.state_dict())
    for r in (plain, advised):
        torch.manual_seed(0)
        collect(r.alg, r.env, 8)
    weights = torch.full_like(advised.alg.storage.observations[WEIGHT_KEY], 0.25)

    def fixed_weights(*args, **kwargs):
        return weights, {}

    advised.alg.guidance.before_update = fixed_weights  # a known w: the surrogate gradient scales by 1 - w
    mlp_p, mlp_a = list(plain.alg.actor.mlp.parameters()), list(advised.alg.actor.mlp.parameters())
    g_plain = grads_of_next_step(plain.alg, mlp_p)  # the mean's layers (the std also has the unweighted entropy)
    g_adv = grads_of_next_step(advised.alg, mlp_a)
    assert advised.alg.storage.observations[WEIGHT_KEY].shape == (8, 16, 1)
    assert sum(bool(g.abs().sum() > 0) for g in g_plain) >= 4
    for a, b in zip(g_adv, g_plain, strict=True):
        torch.testing.assert_close(a, 0.75 * b, rtol=1e-4, atol=1e-7)


def test_warmup_holds_the_policy_gradient_of_a_handed_over_student(tmp_path, ppo_teacher, teacher_path):
    path = _distilled(tmp_path, teacher_path)
    algo = {"init_student": path, "imitation_coef": 0.5, "critic_warmup": 1.0, "critic_warmup_max_iterations": 2}
    algo |= {"ppo_ramp_iterations": 2}
    r = runner(tmp_path / "r", ppo_teacher, algo)
    assert r.alg.guidance.warmup.active
    seen = {}
    r.alg.iteration_callbacks.append(lambda it, m: seen.setdefault(it, m) and None)
    r.learn(4)
    assert [seen[it]["Distillation/ppo_warmup"] for it in range(4)] == [0.0, 0.0, 0.5, 1.0]  # the cap at 2, ramp 2
    assert r.alg.guidance.warmup.done_at == 2


def test_warmup_and_advisor_resume_from_the_checkpoint(tmp_path, ppo_teacher, teacher_path):
    path = _distilled(tmp_path, teacher_path)
    algo = {"init_student": path, "critic_warmup": 1.0, "critic_warmup_max_iterations": 1}
    a = runner(tmp_path / "a", ppo_teacher, algo, log=True, save_interval=1)
    a.learn(2)
    saved = str(tmp_path / "model_1.pt")
    shutil.copy(tmp_path / "a" / "logs" / "model_1.pt", saved)
    state = torch.load(saved, weights_only=True)[CHECKPOINT_KEY]["guidance"]
    assert state["warmup"] == {"done_at": 1} and "advisor" in state
    b = runner(tmp_path / "b", None, algo)
    b.load(saved)
    assert b.alg.guidance.warmup.done_at == 1
    for k, v in a.alg.guidance.advisor.model.state_dict().items():
        assert torch.equal(b.alg.guidance.advisor.model.state_dict()[k], v), k


def test_imitation_coef_0_turns_the_recipe_off(tmp_path, ppo_teacher, teacher_path):
    r = runner(tmp_path, ppo_teacher, {"imitation_coef": 0.0, "init_student": _distilled(tmp_path, teacher_path)})
    g = r.alg.guidance
    assert not g.active and g.advisor is None and not g.warmup.active and g.lr_floor == 1e-5


def test_init_student_std_sets_the_handed_over_std(tmp_path, ppo_teacher, teacher_path):
    r = runner(tmp_path, ppo_teacher, {"init_student": _distilled(tmp_path, teacher_path), "init_student_std": 0.3})
    obs = r.env.get_observations()
    r.alg.actor(obs, stochastic_output=True)
    assert torch.allclose(r.alg.actor.output_std, torch.full_like(r.alg.actor.output_std, 0.3))


def test_an_averaged_student_hands_over_the_normaliser_its_forward_pass_reads(tmp_path, ppo_teacher, teacher_path):
    d = make_runner(tmp_path / "d", teacher_path, {"ema_decay": 0.9})
    d.learn(2)
    saved = {**d.alg.save(), "iter": 1, "infos": None}
    student = saved["student_state_dict"]  # the average (ema_decay)
    var_keys = [k for k in student if k.endswith("._var")]
    assert var_keys
    for k in var_keys:  # written now: the variance is the std squared (the std is what the forward pass reads)
        std = student[k.removesuffix("_var") + "_std"]
        assert torch.equal(student[k], std.square()) and not torch.equal(std, torch.ones_like(std))
        student[k] = 0.95 * student[k] + 0.05  # as written before: the variance averaged separately from 1
    torch.save(saved, tmp_path / "averaged.pt")
    r = runner(tmp_path / "a", ppo_teacher, {"init_student": str(tmp_path / "averaged.pt")})
    actor = r.alg._raw_actor.state_dict()
    for k in var_keys:
        std = student[k.removesuffix("_var") + "_std"]
        assert torch.equal(actor[k.removesuffix("_var") + "_std"], std) and torch.equal(actor[k], std.square())
        assert not torch.equal(actor[k], student[k])
    plain = torch.load(_distilled(tmp_path, teacher_path), weights_only=True)["student_state_dict"]
    r = runner(tmp_path / "p", ppo_teacher, {"init_student": str(tmp_path / "distilled.pt")})
    actor = r.alg._raw_actor.state_dict()
    for k in var_keys:  # a student that was not averaged loads as it is
        assert torch.equal(actor[k], plain[k])


def test_adaptive_learning_rate_never_falls_below_the_floor(tmp_path, ppo_teacher):
    algo = {"schedule": "adaptive", "desired_kl": 1e-12, "learning_rate": 1e-3, "imitation_coef": 5.0}
    r = runner(tmp_path, ppo_teacher, algo)  # every KL is above 2 * desired_kl: rsl_rl would go down to 1e-5
    r.learn(3)
    assert r.alg.learning_rate == pytest.approx(1e-3)
    low = runner(tmp_path / "m", ppo_teacher, {**algo, "min_learning_rate": 2e-4})
    low.learn(3)
    assert low.alg.learning_rate == pytest.approx(2e-4)


def _ppo_checkpoint_with_critic(tmp_path, hidden: int) -> str:
    """The toy teacher's PPO checkpoint with a critic of ``hidden`` units per layer (random weights)."""
    from rsl_rl.models import MLPModel

    path = str(tmp_path / f"ppo_{hidden}.pt")
    loaded = torch.load(save_teacher(tmp_path / "t.pt"), weights_only=True)
    critic = MLPModel(make_env().get_observations(), {"critic": ["teacher"]}, "critic", 1, hidden_dims=[hidden] * 2)
    torch.save({**loaded, "critic_state_dict": critic.state_dict()}, path)
    return path


def test_the_teacher_critic_starts_the_critic_where_it_fits(tmp_path):
    fits = _ppo_checkpoint_with_critic(tmp_path, 32)  # our critic: "teacher", 32 x 32
    r = runner(tmp_path / "r", fits)
    for k, v in torch.load(fits, weights_only=True)["critic_state_dict"].items():
        assert torch.equal(r.alg.critic.state_dict()[k], v), k
    never = runner(tmp_path / "n", fits, {"init_critic_from_teacher": False})
    assert not torch.equal(never.alg.critic.state_dict()["mlp.0.weight"], r.alg.critic.state_dict()["mlp.0.weight"])
    misfit = _ppo_checkpoint_with_critic(tmp_path, 16)  # another size
    default = runner(tmp_path / "d", misfit)  # None: skipped where it does not fit
    assert default.alg.teacher_loaded
    with pytest.raises(ValueError, match=r"init_critic_from_teacher=True, but the teacher's critic does not fit"):
        runner(tmp_path / "x", misfit, {"init_critic_from_teacher": True})


def _rates(r, iterations: int) -> list[float]:
    """Learn ``iterations`` and return the optimizer's rate at each update (read in the iteration callback)."""
    rates = []
    r.alg.iteration_callbacks.append(lambda it, m: rates.append(r.alg.optimizer.param_groups[0]["lr"]))
    r.learn(iterations)
    return rates


def test_a_cosine_learning_rate_decays_to_min_learning_rate_at_the_end_of_the_run(tmp_path, ppo_teacher):
    algo = {"schedule": "fixed", "learning_rate": 1e-3, "learning_rate_schedule": "cosine", "min_learning_rate": 1e-4}
    r = runner(tmp_path, ppo_teacher, algo, max_iterations=5)
    rates = _rates(r, 5)  # the end: the run's max_iterations (the stock runner does not pass learn()'s length)
    expected = [1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * it / 5)) for it in range(5)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert r.alg.learning_rate == pytest.approx(expected[-1], rel=1e-12)  # what rsl_rl logs as Loss/learning_rate
    linear = runner(
        tmp_path / "l", ppo_teacher, {**algo, "learning_rate_schedule": "linear", "learning_rate_iterations": 2}
    )
    assert _rates(linear, 4) == pytest.approx([1e-3, 5.5e-4, 1e-4, 1e-4], rel=1e-12)  # kept after its end
    held = runner(tmp_path / "h", ppo_teacher, {**algo, "learning_rate_decay_start_fraction": 0.6}, max_iterations=5)
    # the decay starts at 0.6 * 5 = iteration 3 and ends at 5: full rate for 0-3, then half way at 4
    assert _rates(held, 5) == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5.5e-4], rel=1e-12)
    assert "learning rate cosine 0.001 -> 0.0001 from 0.6 of the run by the end of the run" in held.alg.describe()
    pinned = {**algo, "learning_rate_decay_start_fraction": 0.5, "learning_rate_iterations": 4}
    to_4 = runner(tmp_path / "p", ppo_teacher, pinned, max_iterations=5)  # held for 0.5 of iterations 0-4, not of 5
    assert "learning rate cosine 0.001 -> 0.0001 from 0.5 of the way by iteration 4" in to_4.alg.describe()
    assert _rates(to_4, 5) == pytest.approx([1e-3, 1e-3, 1e-3, 5.5e-4, 1e-4], rel=1e-12)


def test_a_resumed_run_continues_the_learning_rate_decay(tmp_path, ppo_teacher):
    algo = {"schedule": "fixed", "learning_rate_schedule": "cosine", "min_learning_rate": 1e-4}
    algo |= {"learning_rate_iterations": 4}
    whole = _rates(runner(tmp_path / "w", ppo_teacher, algo), 4)
    a = runner(tmp_path / "a", ppo_teacher, algo, log=True, save_interval=1)
    assert _rates(a, 2) == whole[:2]
    b = runner(tmp_path / "b", None, algo)
    b.load(str(tmp_path / "a" / "logs" / "model_1.pt"))  # saved after iteration 1, which rsl_rl runs again
    assert b.current_learning_iteration == 1
    assert _rates(b, 3) == pytest.approx(whole[1:], rel=1e-12)
    assert len(set(whole)) == 4


def test_the_constant_schedule_leaves_the_rate_to_rsl_rl(tmp_path, ppo_teacher):
    algo = {"schedule": "fixed", "learning_rate": 7e-4, "min_learning_rate": 1e-5, "learning_rate_schedule": "constant"}
    assert _rates(runner(tmp_path, ppo_teacher, algo), 2) == [7e-4, 7e-4]


def test_the_default_holds_a_fixed_rate_for_two_thirds_then_decays_by_a_cosine_to_a_tenth(tmp_path, ppo_teacher):
    algo = {"schedule": "fixed", "learning_rate": 2e-3}
    r = runner(tmp_path / "d", ppo_teacher, algo, max_iterations=6)
    lr = r.alg.lr_schedule
    assert (lr.learning_rate_schedule, lr.min_learning_rate, lr.learning_rate_decay_start_fraction) == (
        "cosine",
        2e-4,
        0.67,
    )
    # the decay starts at 0.67 * 6 = iteration 4.02 and ends at 6
    expected = [2e-3] * 5 + [2e-4 + 1.8e-3 * 0.5 * (1 + math.cos(math.pi * (5 - 4.02) / (6 - 4.02)))]
    assert _rates(r, 6) == pytest.approx(expected, rel=1e-12)
    assert "learning rate cosine 0.002 -> 0.0002 from 0.67 of the run by the end of the run (auto)" in r.alg.describe()
    # the same run as the explicit keys, bit for bit (the benchmarks' rows of the held decay are the default's)
    explicit = {
        "learning_rate_schedule": "cosine",
        "min_learning_rate": 2e-4,
        "learning_rate_decay_start_fraction": 0.67,
    }
    e = runner(tmp_path / "e", ppo_teacher, {**algo, **explicit}, max_iterations=6)
    assert _rates(e, 6) == _rates(runner(tmp_path / "d2", ppo_teacher, algo, max_iterations=6), 6)
    for k, v in e.alg.actor.state_dict().items():
        assert torch.equal(v, r.alg.actor.state_dict()[k]), k
    # an explicit decay starts at once unless told otherwise; the auto decay takes a set fraction and floor
    c = runner(tmp_path / "c", ppo_teacher, {**algo, "learning_rate_schedule": "cosine"}, max_iterations=4)
    assert (c.alg.lr_schedule.min_learning_rate, c.alg.lr_schedule.learning_rate_decay_start_fraction) == (2e-4, 0.0)
    assert "learning rate cosine 0.002 -> 0.0002 by the end of the run" in c.alg.describe()
    set_keys = {**algo, "min_learning_rate": 5e-4, "learning_rate_decay_start_fraction": 0.0}
    s = runner(tmp_path / "s", ppo_teacher, set_keys, max_iterations=4)
    expected = [5e-4 + 1.5e-3 * 0.5 * (1 + math.cos(math.pi * it / 4)) for it in range(4)]
    assert _rates(s, 4) == pytest.approx(expected, rel=1e-12)


def test_under_kl_adaptive_the_default_leaves_the_rate_to_the_kl_and_constant_to_rsl_rl(tmp_path, ppo_teacher):
    adaptive = runner(tmp_path / "a", ppo_teacher, {"schedule": "adaptive", "learning_rate": 2e-3})
    assert not adaptive.alg.lr_schedule.decays
    assert "learning rate KL-adaptive from 0.002 (auto)" in adaptive.alg.describe()
    fixed = runner(
        tmp_path / "f", ppo_teacher, {"schedule": "fixed", "learning_rate": 2e-3, "learning_rate_schedule": "constant"}
    )
    assert not fixed.alg.lr_schedule.decays
    assert fixed.alg.describe().endswith("learning rate fixed 0.002")
    assert _rates(fixed, 2) == [2e-3, 2e-3]


@pytest.mark.parametrize(
    ("algo", "message"),
    [
        ({"learning_rate_schedule": "cosine", "min_learning_rate": 1e-4}, "set schedule='fixed'"),  # PPO's default
        (
            {"schedule": "fixed", "learning_rate_schedule": "cosine", "min_learning_rate": 1e-2},
            "is above learning_rate",
        ),
        (
            {"schedule": "fixed", "learning_rate_schedule": "exp", "min_learning_rate": 1e-4},
            "learning_rate_schedule='exp' is not one of",
        ),
        (
            {"schedule": "fixed", "learning_rate_schedule": "linear", "min_learning_rate": 1e-2},
            "is above learning_rate",
        ),
        (
            {
                "schedule": "fixed",
                "learning_rate_schedule": "linear",
                "min_learning_rate": 0.0,
                "learning_rate_iterations": 0,
            },
            "learning_rate_iterations=0",
        ),
        (
            {"schedule": "fixed", "learning_rate_schedule": "cosine", "learning_rate_decay_start_fraction": 1},
            "learning_rate_decay_start_fraction=1 must be a number in [0, 1)",
        ),
        (
            {"schedule": "fixed", "learning_rate_decay_start_fraction": -0.1},  # the default's decay too
            "learning_rate_decay_start_fraction=-0.1 must be a number in [0, 1)",
        ),
        ({"schedule": "fixed", "min_learning_rate": 1e-2}, "is above learning_rate"),  # the default's floor
        ({"schedule": "fixed", "learning_rate_schedule": "Auto"}, "learning_rate_schedule='Auto' is not one of"),
        (  # a hold without a decay is refused, not ignored
            {"schedule": "fixed", "learning_rate_schedule": "constant", "learning_rate_decay_start_fraction": 0.5},
            "learning_rate_decay_start_fraction=0.5 holds a decay, and learning_rate_schedule='constant' does not "
            "decay; leave it None, or set learning_rate_schedule 'auto', 'linear' or 'cosine' under schedule='fixed'.",
        ),
        (
            {"learning_rate_decay_start_fraction": 0.67},  # PPO's KL-adaptive default
            "and under rsl_rl's KL-adaptive schedule learning_rate_schedule='auto' leaves the rate to the KL; leave "
            "it None, or set schedule='fixed'.",
        ),
        (
            {"schedule": "fixed", "imitation_coef": 0.0, "learning_rate_decay_start_fraction": 0.67},
            "and with imitation_coef 0 learning_rate_schedule='auto' keeps rsl_rl's rate; leave it None, or set "
            "learning_rate_schedule 'linear' or 'cosine'.",
        ),
    ],
)
def test_a_learning_rate_decay_refuses_what_it_cannot_follow(tmp_path, ppo_teacher, algo, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        runner(tmp_path, ppo_teacher, algo)
