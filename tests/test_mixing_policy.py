"""MixingPolicy: per-env teacher masks, granularities, assignments, determinism, select and state round trips."""

from __future__ import annotations

import math

import pytest
import torch

from dagmix.mixing import MixingPolicy

MODES = [  # (granularity, assignment): every valid combination
    ("step", "random"),
    ("step", "quota"),
    ("episode", "random"),
    ("iteration", "random"),
    ("iteration", "quota"),
]
MODE_IDS = [f"{g}-{a}" for g, a in MODES]


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> str:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return request.param


def dones_source(num_envs: int, seed: int, p: float = 0.3):
    """Yield reproducible float dones (1.0 with probability ``p``) from a generator independent of the policy's."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield (torch.rand(num_envs, generator=gen) < p).float()


def run_sequence(
    policy: MixingPolicy, betas: list[float], steps: int, dones_seed: int = 99, start: int = 0
) -> list[torch.Tensor]:
    """Drive ``policy`` the way the algorithm does from iteration ``start``; return a CPU copy of each step's mask."""
    dones = dones_source(policy.num_envs, dones_seed)
    masks = []
    for it, beta in enumerate(betas, start=start):
        policy.begin_iteration(beta, it)
        for _ in range(steps):
            masks.append(policy.step().cpu().clone())
            policy.on_dones(next(dones).to(policy.device))
    return masks


def assert_same_sequences(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def hoeffding_tolerance(n: int, false_failure: float) -> float:
    """Return t with P(|mean of n iid [0,1] draws - p| >= t) <= false_failure (two-sided Hoeffding bound)."""
    return math.sqrt(math.log(2.0 / false_failure) / (2.0 * n))


# --------------------------------------------------------------------------- mask basics
@pytest.mark.parametrize(("granularity", "assignment"), MODES, ids=MODE_IDS)
def test_mask_dtype_shape_device(device, granularity, assignment):
    policy = MixingPolicy(13, device, granularity, assignment, seed=0)
    assert policy.teacher_mask.dtype == torch.bool
    assert policy.teacher_mask.shape == (13,)
    assert not policy.teacher_mask.any()  # the student drives until the first begin_iteration
    for beta in (0.0, 0.4, 1.0):
        policy.begin_iteration(beta, 0)
        mask = policy.step()
        assert mask.dtype == torch.bool
        assert mask.shape == (13,)
        assert mask.device.type == torch.device(device).type
        policy.on_dones(torch.ones(13, device=device))
        assert policy.teacher_mask.dtype == torch.bool and policy.teacher_mask.shape == (13,)


# --------------------------------------------------------------------------- random assignment
def test_random_assignment_fraction_matches_beta(device):
    num_envs, steps, beta = 4096, 100, 0.3
    policy = MixingPolicy(num_envs, device, "step", "random", seed=1)
    policy.begin_iteration(beta, 0)
    total = sum(int(policy.step().sum()) for _ in range(steps))
    n = num_envs * steps
    # Hoeffding over n = 409,600 independent Bernoulli(0.3) draws: P(false failure) <= 1e-9 (t ~= 0.0050).
    assert abs(total / n - beta) < hoeffding_tolerance(n, 1e-9)


def test_random_assignment_per_step_fraction(device):
    num_envs, beta = 4096, 0.3
    policy = MixingPolicy(num_envs, device, "step", "random", seed=2)
    policy.begin_iteration(beta, 0)
    # Per step, Hoeffding over 4096 draws with P <= 1e-9 each: t ~= 0.050; 20 steps -> P(false failure) <= 2e-8.
    tol = hoeffding_tolerance(num_envs, 1e-9)
    for _ in range(20):
        assert abs(policy.step().float().mean().item() - beta) < tol


def test_step_granularity_redraws_every_step(device):
    policy = MixingPolicy(4096, device, "step", "random", seed=3)
    policy.begin_iteration(0.3, 0)
    masks = [policy.step().clone() for _ in range(10)]
    # Two independent masks agree on an env with probability 0.3**2 + 0.7**2 = 0.58, so identical consecutive
    # masks have probability 0.58**4096 < 1e-900.
    for a, b in zip(masks[:-1], masks[1:], strict=True):
        assert not torch.equal(a, b)


def test_step_returns_the_live_mask(device):
    policy = MixingPolicy(64, device, "step", "random", seed=3)
    policy.begin_iteration(0.5, 0)
    assert policy.step() is policy.teacher_mask


# --------------------------------------------------------------------------- quota assignment
@pytest.mark.parametrize("granularity", ["step", "iteration"])
@pytest.mark.parametrize("num_envs", [1, 2, 7, 10, 64, 1000])
@pytest.mark.parametrize("beta", [0.01, 0.1, 0.25, 0.3, 0.5, 0.75, 0.99])
def test_quota_exact_count(device, granularity, num_envs, beta):
    policy = MixingPolicy(num_envs, device, granularity, "quota", seed=4)
    expected = math.floor(beta * num_envs + 0.5)
    for it in range(5):
        policy.begin_iteration(beta, it)
        for _ in range(3):
            assert int(policy.step().sum()) == expected


def test_quota_seven_envs_half_gives_four(device):
    policy = MixingPolicy(7, device, "step", "quota", seed=0)
    policy.begin_iteration(0.5, 0)
    counts = {int(policy.step().sum()) for _ in range(50)}
    assert counts == {4}


def test_quota_varies_which_envs_are_chosen(device):
    policy = MixingPolicy(64, device, "step", "quota", seed=5)
    policy.begin_iteration(0.5, 0)
    masks = [policy.step().clone() for _ in range(10)]
    # A uniformly random 32-subset of 64 repeats with probability 1 / C(64, 32) < 1e-18 per pair.
    assert len({tuple(m.tolist()) for m in masks}) == len(masks)


# --------------------------------------------------------------------------- iteration granularity
@pytest.mark.parametrize("assignment", ["random", "quota"])
def test_iteration_granularity_constant_within_iteration(device, assignment):
    policy = MixingPolicy(512, device, "iteration", assignment, seed=6)
    per_iteration = []
    for it in range(4):
        policy.begin_iteration(0.5, it)
        first = policy.step().clone()
        for _ in range(10):
            assert torch.equal(policy.step(), first)
            policy.on_dones(torch.ones(512, device=device))  # dones do not redraw either
            assert torch.equal(policy.teacher_mask, first)
        per_iteration.append(first)
    # Redrawn at each begin_iteration: two draws over 512 envs coincide with probability < 0.5**512 (random)
    # or 1 / C(512, 256) (quota).
    for a, b in zip(per_iteration[:-1], per_iteration[1:], strict=True):
        assert not torch.equal(a, b)


# --------------------------------------------------------------------------- episode granularity
def test_episode_granularity_only_done_envs_change(device):
    num_envs = 2048
    policy = MixingPolicy(num_envs, device, "episode", "random", seed=7)
    policy.begin_iteration(0.5, 0)
    dones = dones_source(num_envs, seed=11, p=0.3)
    changed_any = torch.zeros(num_envs, dtype=torch.bool)
    for it in range(3):
        policy.begin_iteration(0.5, it)
        for _ in range(10):
            before = policy.step().cpu().clone()
            assert torch.equal(policy.step().cpu(), before)  # step() alone never redraws
            d = next(dones)
            policy.on_dones(d.to(device))
            after = policy.teacher_mask.cpu()
            kept = d == 0
            assert torch.equal(after[kept], before[kept])
            changed_any |= after != before
    # Done envs were redrawn: some of ~600 done envs per call flip (each flips with probability 0.5).
    assert changed_any.any()


def test_episode_granularity_accepts_bool_and_column_dones(device):
    policy = MixingPolicy(256, device, "episode", "random", seed=8)
    policy.begin_iteration(0.5, 0)
    before = policy.step().clone()
    policy.on_dones(torch.zeros(256, 1, dtype=torch.bool, device=device))
    assert torch.equal(policy.teacher_mask, before)
    policy.on_dones(torch.ones(256, 1, dtype=torch.long, device=device))
    # All envs redrawn: identical to before with probability 0.5**256.
    assert not torch.equal(policy.teacher_mask, before)


def test_episode_granularity_keeps_draws_across_begin_iteration(device):
    policy = MixingPolicy(512, device, "episode", "random", seed=9)
    policy.begin_iteration(0.5, 0)
    first = policy.step().clone()
    policy.begin_iteration(0.5, 1)
    assert torch.equal(policy.step(), first)


def test_episode_granularity_fraction_approaches_new_beta(device):
    num_envs = 4096
    policy = MixingPolicy(num_envs, device, "episode", "random", seed=10)
    policy.begin_iteration(0.2, 0)
    policy.begin_iteration(0.7, 1)  # draws are kept until each env's episode ends
    dones = dones_source(num_envs, seed=12, p=0.3)
    ended = torch.zeros(num_envs, dtype=torch.bool)
    for _ in range(200):
        policy.step()
        d = next(dones)
        policy.on_dones(d.to(device))
        ended |= d.bool()
    # P(some env never ends in 200 steps) <= 4096 * 0.7**200 < 1e-27.
    assert ended.all()
    # Every env's current draw is now an independent Bernoulli(0.7) (the done pattern is independent of the
    # draws); Hoeffding over 4096 envs: P(false failure) <= 1e-9 (t ~= 0.050).
    assert abs(policy.teacher_mask.float().mean().item() - 0.7) < hoeffding_tolerance(num_envs, 1e-9)


# --------------------------------------------------------------------------- beta exactly 0 or 1
@pytest.mark.parametrize(("granularity", "assignment"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_beta_zero_or_one_applies_to_all_envs_at_once(device, granularity, assignment, beta):
    num_envs = 257
    policy = MixingPolicy(num_envs, device, granularity, assignment, seed=11)
    policy.begin_iteration(0.5, 0)
    dones = dones_source(num_envs, seed=13)
    for _ in range(5):
        policy.step()
        policy.on_dones(next(dones).to(device))
    mixed = policy.teacher_mask.clone()
    assert mixed.any() and not mixed.all()  # mixed draws: fails with probability <= 2 * 0.5**257

    policy.begin_iteration(beta, 1)
    expected = torch.full((num_envs,), beta == 1.0, dtype=torch.bool, device=device)
    assert torch.equal(policy.teacher_mask, expected)  # before any step or done
    for _ in range(5):
        assert torch.equal(policy.step(), expected)
        policy.on_dones(next(dones).to(device))
        assert torch.equal(policy.teacher_mask, expected)


def test_beta_one_then_zero_switches_all_envs(device):
    policy = MixingPolicy(32, device, "episode", "random", seed=0)
    policy.begin_iteration(1.0, 0)
    assert policy.step().all()
    policy.begin_iteration(0.0, 1)
    assert not policy.step().any()


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize(("granularity", "assignment"), MODES, ids=MODE_IDS)
def test_same_seed_same_masks_different_seed_different(device, granularity, assignment):
    betas = [0.5, 0.3, 0.7, 0.5]

    def masks(seed: int) -> list[torch.Tensor]:
        return run_sequence(MixingPolicy(128, device, granularity, assignment, seed=seed), betas, steps=6)

    assert_same_sequences(masks(21), masks(21))
    a, b = masks(21), masks(22)
    # Independent draws over 128 envs x 24 steps coincide with negligible probability.
    assert not all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_reseed_is_deterministic_in_seed_and_iteration(device):
    def masks(seed: int, reseed_at: int) -> list[torch.Tensor]:
        policy = MixingPolicy(256, device, "step", "random", seed=seed)
        policy.begin_iteration(0.5, 0)
        policy.step()
        policy.reseed(reseed_at)
        return [policy.step().cpu().clone() for _ in range(4)]

    assert_same_sequences(masks(1, 5), masks(1, 5))
    # Identical to a policy that drew differently before the reseed: only (seed, iteration) matter.
    other = MixingPolicy(256, device, "step", "random", seed=1)
    other.begin_iteration(0.5, 0)
    for _ in range(7):
        other.step()
    other.reseed(5)
    assert_same_sequences(masks(1, 5), [other.step().cpu().clone() for _ in range(4)])
    assert not torch.equal(masks(1, 5)[0], masks(1, 6)[0])
    assert not torch.equal(masks(1, 5)[0], masks(2, 5)[0])


# --------------------------------------------------------------------------- select
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_select_picks_teacher_where_mask_is_set(device, beta):
    num_envs, num_actions = 64, 3
    policy = MixingPolicy(num_envs, device, "step", "random", seed=12)
    policy.begin_iteration(beta, 0)
    mask = policy.step()
    student = torch.randn(num_envs, num_actions, device=device)
    teacher = torch.randn(num_envs, num_actions, device=device) + 10.0  # never equal to student
    executed = policy.select(student, teacher)
    assert executed.shape == (num_envs, num_actions)
    assert executed.dtype == student.dtype
    assert executed.device == student.device
    assert torch.equal(executed[mask], teacher[mask])
    assert torch.equal(executed[~mask], student[~mask])
    if beta == 0.5:
        assert mask.any() and not mask.all()  # both branches exercised; fails with probability 2 * 0.5**64


# --------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize(("granularity", "assignment"), MODES, ids=MODE_IDS)
def test_state_dict_round_trip_continues_identically(device, granularity, assignment):
    num_envs = 96
    original = MixingPolicy(num_envs, device, granularity, assignment, seed=31)
    run_sequence(original, [0.5, 0.4], steps=5, dones_seed=1)
    state = original.state_dict()
    assert state["teacher_mask"].device.type == "cpu"
    assert state["generator_state"].device.type == "cpu"
    assert state["generator_device_type"] == torch.device(device).type

    restored = MixingPolicy(num_envs, device, granularity, assignment, seed=999)  # seed comes from the state
    restored.load_state_dict(state)
    assert torch.equal(restored.teacher_mask, original.teacher_mask)
    assert (restored.beta, restored.iteration, restored.seed) == (original.beta, original.iteration, 31)

    betas = [0.4, 0.6, 0.5]
    # the episode granularity's first step keeps the restored draws; the others redraw from the restored generator
    assert_same_sequences(
        run_sequence(original, betas, steps=5, dones_seed=2, start=2),
        run_sequence(restored, betas, steps=5, dones_seed=2, start=2),
    )


def test_state_dict_is_a_snapshot(device):
    policy = MixingPolicy(64, device, "step", "random", seed=1)
    policy.begin_iteration(0.5, 0)
    policy.step()
    state = policy.state_dict()
    saved_mask = state["teacher_mask"].clone()
    for _ in range(3):
        policy.step()
    assert torch.equal(state["teacher_mask"], saved_mask)


def test_state_dict_round_trip_before_any_draw_in_episode_granularity(device):
    original = MixingPolicy(64, device, "episode", "random", seed=3)
    restored = MixingPolicy(64, device, "episode", "random", seed=3)
    restored.load_state_dict(original.state_dict())
    assert_same_sequences(run_sequence(original, [0.5, 0.5], 4), run_sequence(restored, [0.5, 0.5], 4))


def foreign_state(device: str) -> dict:
    """Return a state dict whose generator was saved on another device type than ``device``."""
    source = MixingPolicy(80, "cpu", "step", "random", seed=41)
    run_sequence(source, [0.5, 0.5, 0.5], steps=3)
    state = source.state_dict()
    state["generator_device_type"] = "cuda" if torch.device(device).type == "cpu" else "cpu"
    return state


def test_foreign_generator_state_warns_and_reseeds_deterministically(device):
    state = foreign_state(device)
    assert state["iteration"] == 2
    policies = []
    for construct_seed in (0, 123):
        policy = MixingPolicy(80, device, "step", "random", seed=construct_seed)
        with pytest.warns(UserWarning, match=r"cannot be restored.*seed=41, iteration=2"):
            policy.load_state_dict(state)
        assert policy.seed == 41
        assert torch.equal(policy.teacher_mask.cpu(), state["teacher_mask"])
        policies.append(policy)
    a, b = (run_sequence(p, [0.5, 0.5], steps=4, start=3) for p in policies)
    assert_same_sequences(a, b)

    # The reseed is the documented one, from the state's (seed, iteration): same as restoring on the right device
    # type and calling reseed(2).
    ref = MixingPolicy(80, device, "step", "random", seed=0)
    own_type = {"generator_device_type": torch.device(device).type, "generator_state": ref.generator.get_state().cpu()}
    ref.load_state_dict({**state, **own_type})
    ref.reseed(2)
    assert_same_sequences(a, run_sequence(ref, [0.5, 0.5], steps=4, start=3))
    # and not what the saved generator state would have given
    exact = MixingPolicy(80, "cpu", "step", "random", seed=0)
    exact.load_state_dict({**state, "generator_device_type": "cpu"})
    assert not torch.equal(run_sequence(exact, [0.5], steps=1, start=3)[0], a[0])


def test_mask_of_other_size_warns_and_redraws(device):
    small = MixingPolicy(8, device, "iteration", "quota", seed=5)
    small.begin_iteration(0.5, 3)
    state = small.state_dict()

    big = MixingPolicy(20, device, "iteration", "quota", seed=5)
    with pytest.warns(UserWarning, match=r"8 envs but this run has 20; redrawing"):
        big.load_state_dict(state)
    assert big.teacher_mask.shape == (20,)
    assert big.teacher_mask.device.type == torch.device(device).type
    assert int(big.teacher_mask.sum()) == 10  # redrawn with the restored beta 0.5 and the quota
    assert (big.beta, big.iteration) == (0.5, 3)


def test_mask_of_other_size_with_beta_one_redraws_all_teacher(device):
    small = MixingPolicy(8, device, "episode", "random", seed=5)
    small.begin_iteration(1.0, 0)
    big = MixingPolicy(20, device, "episode", "random", seed=5)
    with pytest.warns(UserWarning, match="redrawing"):
        big.load_state_dict(small.state_dict())
    assert big.teacher_mask.all()


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("num_envs", [0, -3, 2.0, True])
def test_num_envs_must_be_positive_int(num_envs):
    with pytest.raises(ValueError, match=rf"num_envs={num_envs!r} must be a positive int"):
        MixingPolicy(num_envs)


def test_unknown_granularity():
    with pytest.raises(ValueError, match=r"granularity='sometimes' is not one of 'step', 'episode', 'iteration'"):
        MixingPolicy(4, granularity="sometimes")


def test_unknown_assignment():
    with pytest.raises(ValueError, match=r"assignment='lottery' is not one of 'random', 'quota'"):
        MixingPolicy(4, assignment="lottery")


def test_quota_with_episode_granularity():
    with pytest.raises(ValueError, match=r"assignment='quota' cannot be combined with granularity='episode'"):
        MixingPolicy(4, granularity="episode", assignment="quota")


@pytest.mark.parametrize("beta", [1.5, -0.1, float("nan")])
def test_begin_iteration_rejects_beta_outside_unit_interval(beta):
    policy = MixingPolicy(4, seed=0)
    policy.begin_iteration(0.5, 0)
    before = policy.teacher_mask.clone()
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        policy.begin_iteration(beta, 1)
    assert policy.beta == 0.5 and policy.iteration == 0
    assert torch.equal(policy.teacher_mask, before)
