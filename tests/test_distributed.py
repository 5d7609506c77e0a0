"""Multi-GPU consistency, tested as rsl_rl runs it but on CPU: torch.distributed with gloo, 2 processes.

rsl_rl's runner hard-codes CUDA and NCCL for multi-GPU, so the algorithm is built directly with ``multi_gpu``
in its config, as the runner would pass it.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dagmix.algorithms import compat

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _build(rank: int, seed: int, mixing: dict):
    from helpers import make_env, make_train_cfg

    from dagmix.algorithms import MixingDistillation

    cfg = make_train_cfg({"mixing": mixing, "phase_console_output": False}, seed=seed)
    cfg["multi_gpu"] = {"global_rank": rank, "local_rank": rank, "world_size": 2}
    env = make_env(num_envs=32, seed=100 + rank)  # each rank has its own envs
    torch.manual_seed(0)  # same initial weights on both ranks (rsl_rl broadcasts them; here they start equal)
    alg = MixingDistillation.construct_algorithm(env.get_observations(), env, copy.deepcopy(cfg), "cpu")
    alg.teacher_loaded = True
    return alg, env


def _worker(rank: int, store: str, out: str) -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from helpers import rollout

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        mixing = {
            "schedule": "discrepancy_gated",
            "probe_fraction": 0.5,
            "smoothing": 0.0,
            "monotone": False,
            "gain": 0.01,
        }
        mixing["min_beta"] = 0.0
        alg, env = _build(rank, seed=7, mixing=mixing)  # the same run seed on both ranks (plain torchrun)
        betas, masks, signals = [], [], []
        for _ in range(4):
            rollout(alg, env, 8)
            masks.append(alg.teacher_masks.clone())
            alg.update()
            betas.append(alg.last_metrics["Distillation/beta"])
            signals.append(alg.last_metrics["Distillation/adaptive_signal"])
        # a launcher that already added the rank to the seed (Isaac Lab): no second offset
        offset_alg, _ = _build(rank, seed=7 + rank, mixing={"schedule": "constant", "beta": 0.5})
        explicit_alg, _ = _build(rank, seed=7, mixing={"schedule": "constant", "beta": 0.5, "seed": 3})
        torch.save(
            {
                "betas": betas,
                "signals": signals,
                "masks": masks,
                "seed": alg.mixing_policy.seed,
                "offset_seed": offset_alg.mixing_policy.seed,
                "explicit_seed": explicit_alg.mixing_policy.seed,
                "params": [p.detach().clone() for p in alg.student.parameters()],
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_take_identical_decisions_but_draw_different_masks(tmp_path):
    from dagmix.mixing.policy import reseed_value

    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    # decisions come from all-reduced signals: identical on both ranks, and they do move beta
    assert r0["signals"] == r1["signals"] and r0["betas"] == r1["betas"]
    assert r0["betas"][0] == 0.5 and len(set(r0["betas"])) > 1
    # the masks differ: the same run seed was offset by the rank, once
    assert r0["seed"] == reseed_value(7, 0) and r1["seed"] == reseed_value(8, 0)
    assert any(not torch.equal(a, b) for a, b in zip(r0["masks"], r1["masks"], strict=True))
    # seeds that already differ per rank are kept as they are (no second offset) ...
    assert r0["offset_seed"] == reseed_value(7, 0) and r1["offset_seed"] == reseed_value(8, 0)
    # ... and an explicit mixing.seed, equal on all ranks, is offset by the rank
    assert (r0["explicit_seed"], r1["explicit_seed"]) == (3, 4)
    # gradients are averaged across ranks: the students stay identical
    assert all(torch.allclose(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))


def _worker_averaged(rank: int, store: str, out: str) -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from helpers import make_env, make_train_cfg, rollout

    from dagmix.algorithms import MixingDistillation

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        algo = {"phase_console_output": False, "ema_decay": 0.8, "replay": {"iterations": 2}, "gradient_length": 4}
        cfg = make_train_cfg(algo, student="gru", seed=7)
        cfg["multi_gpu"] = {"global_rank": rank, "local_rank": rank, "world_size": 2}
        env = make_env(num_envs=32, seed=100 + rank)
        torch.manual_seed(rank)  # different initial weights: rsl_rl's learn() broadcasts rank 0's
        alg = MixingDistillation.construct_algorithm(env.get_observations(), env, copy.deepcopy(cfg), "cpu")
        alg.teacher_loaded = True
        alg.broadcast_parameters()
        alg.train_mode()
        for _ in range(3):
            rollout(alg, env, 8)
            alg.update()
        torch.save(
            {
                "raw": {k: v.clone() for k, v in alg.student.state_dict().items()},
                "averaged": {k: v.clone() for k, v in alg.get_policy().state_dict().items()},
                "replay_loss": alg.last_metrics["Distillation/replay_loss"],
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(compat.STUDENT_TEACHER_POLICY, reason="rsl-rl-lib 3.x: no weight averaging or replay")
def test_two_ranks_keep_identical_raw_and_averaged_students_with_recurrent_replay(tmp_path):
    mp.spawn(_worker_averaged, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["replay_loss"] == r1["replay_loss"] > 0  # all-reduced
    for part in ("raw", "averaged"):
        for k in r0[part]:
            if k.startswith("obs_normalizer") and compat._V < (5, 5, 0):
                continue  # before 5.5 rsl_rl's normalizer keeps per-rank statistics; 5.5 all-reduces them
            assert torch.allclose(r0[part][k], r1[part][k]), (part, k)


def _worker_dagger_ppo(rank: int, store: str, out: str) -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from helpers import make_env
    from test_dagger_ppo import collect, train_cfg

    from dagmix.algorithms import MixingDAggerPPO

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        cfg = train_cfg({"phase_console_output": False}, actor="gru")  # the recipe: MixingDAggerPPO's defaults
        cfg["multi_gpu"] = {"global_rank": rank, "local_rank": rank, "world_size": 2}
        env = make_env(num_envs=16, seed=100 + rank)  # each rank has its own envs
        torch.manual_seed(rank)  # different initial weights: rsl_rl's learn() broadcasts rank 0's
        alg = MixingDAggerPPO.construct_algorithm(env.get_observations(), env, copy.deepcopy(cfg), "cpu")
        alg.teacher_loaded = True
        alg.broadcast_parameters()
        metrics = []
        for _ in range(3):
            collect(alg, env, 8)
            alg.update()
            metrics.append({k: v for k, v in alg.last_metrics.items() if k.startswith("Distillation/")})
        models = {"actor": alg.actor, "critic": alg.critic, "advisor": alg.guidance.advisor.model}
        torch.save(
            {
                "metrics": metrics,
                "models": {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in models.items()},
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not compat.PPO_WITH_MODELS, reason="MixingDAggerPPO needs rsl-rl-lib 5.x")
def test_two_ranks_keep_identical_weights_and_advisor_under_the_teacher_guided_recipe(tmp_path):
    mp.spawn(_worker_dagger_ppo, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for m0, m1 in zip(r0["metrics"], r1["metrics"], strict=True):  # all-reduced: every rank logs the same
        for key in ("imitation_weight", "advisor_distance", "explained_variance"):
            key = f"Distillation/{key}"
            assert m0[key] == pytest.approx(m1[key], rel=1e-6), key
    for name in ("actor", "critic", "advisor"):
        for k in r0["models"][name]:
            if k.startswith("obs_normalizer") and compat._V < (5, 5, 0):
                continue  # before 5.5 rsl_rl's normalizer keeps per-rank statistics
            assert torch.allclose(r0["models"][name][k], r1["models"][name][k], atol=1e-6), (name, k)
