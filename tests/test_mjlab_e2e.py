"""mjlab end to end on CPU: a tiny PPO teacher on Mjlab-Cartpole-Balance, then its dagmix distillation variant,
both through mjlab's own train entry point (which takes the runner from the task registration), and the hand-off of
docs/dagger_ppo.md (distil, then MixingDAggerPPO from the distilled student) run as the page writes it."""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import sys
from pathlib import Path

import pytest

if os.environ.get("DAGMIX_REQUIRE_MJLAB") != "1":
    pytest.importorskip("mjlab")

from mjlab.scripts.train import TrainConfig, launch_training  # noqa: E402
from mjlab.tasks import registry  # noqa: E402

from dagmix.algorithms import CHECKPOINT_KEY  # noqa: E402
from dagmix.integrations.mjlab_tasks import (  # noqa: E402
    MixingCfg,
    MjlabMixingDistillationRunner,
    mixing_dict,
    register_distillation_task,
)
from dagmix.integrations.mjlab_train import main as mjlab_train_main  # noqa: E402
from dagmix.integrations.mjlab_train import register_builtin_variants  # noqa: E402

BAR = "=" * 80


def _train(task_id, log_root, num_envs=32, **agent):
    env = registry.load_env_cfg(task_id)
    env.scene.num_envs = num_envs
    rl = dataclasses.replace(registry.load_rl_cfg(task_id), logger="tensorboard", upload_model=False, **agent)
    launch_training(task_id, TrainConfig(env=env, agent=rl, log_root=str(log_root), gpu_ids=None))


def test_cartpole_ppo_teacher_then_dagmix_distillation(tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # mjlab's launcher writes it; restored after the test
    _train("Mjlab-Cartpole-Balance", tmp_path, max_iterations=2, num_steps_per_env=8, save_interval=1)
    (teacher,) = glob.glob(str(tmp_path / "cartpole" / "*" / "model_1.pt"))

    (task_id, _) = register_builtin_variants()
    assert registry.load_runner_cls(task_id) is MjlabMixingDistillationRunner
    algorithm = registry.load_rl_cfg(task_id).algorithm
    algorithm = dataclasses.replace(
        algorithm, gradient_length=8, mixing=dataclasses.replace(algorithm.mixing, phase1_iterations=2)
    )
    capsys.readouterr()
    _train(
        task_id,
        tmp_path,
        max_iterations=4,
        num_steps_per_env=8,
        save_interval=1,
        teacher_checkpoint=teacher,
        algorithm=algorithm,
    )
    out = capsys.readouterr().out
    assert out.count("Training Phase: Phase 1 (teacher actions)") == 2
    assert out.count("Training Phase: Phase 2 (student actions)") == 2
    assert "Phase Iteration: 1/2 (Phase 1)" in out and "Phase Iteration: 2/2 (Phase 1)" in out
    banner = f"{BAR}\n{BAR}\n  SWITCHING TO PHASE 2: Now using STUDENT actions to update environment\n  Iteration: 2\n"
    assert out.count(banner) == 1

    (run,) = glob.glob(str(tmp_path / "cartpole_distillation" / "*"))
    acc = EventAccumulator(run)
    acc.Reload()

    def series(tag):
        return {e.step: e.value for e in acc.Scalars(tag)}

    assert series("Distillation/beta") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    assert series("Distillation/training_phase") == {0: 1.0, 1: 1.0, 2: 2.0, 3: 2.0}
    assert series("Distillation/teacher_fraction") == {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}
    assert set(series("Loss/behavior")) == {0, 1, 2, 3}

    import torch

    ckpt = torch.load(os.path.join(run, "model_3.pt"), weights_only=False)
    assert ckpt["iter"] == 3 and ckpt[CHECKPOINT_KEY]["mixing"]["phase1_iterations"] == 2
    assert "env_state" in ckpt["infos"]  # mjlab's own checkpoint entries are kept


def _check_handoff_module():
    path = Path(__file__).resolve().parents[1] / "scripts" / "check_handoff.py"
    spec = importlib.util.spec_from_file_location("check_handoff", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_handoff_from_distillation_to_dagger_ppo_as_documented(tmp_path, monkeypatch, capsys):
    handoff = _check_handoff_module()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # mjlab's launcher writes it; restored after the test
    monkeypatch.chdir(tmp_path)  # the documented commands write to logs/rsl_rl/ under the working directory
    _train("Mjlab-Cartpole-Balance", tmp_path / "logs" / "rsl_rl", max_iterations=2, num_steps_per_env=8)
    (teacher,) = glob.glob(str(tmp_path / "logs" / "rsl_rl" / "cartpole" / "*" / "model_1.pt"))
    size = ["--env.scene.num-envs", "8", "--agent.max-iterations", "2"]  # the only flags the page does not show

    def run(cmd, seed):
        assert cmd[:3] == ["python", "-m", "dagmix.integrations.mjlab_train"]
        monkeypatch.setattr(sys, "argv", ["mjlab_train", *cmd[3:], *size, "--agent.seed", str(seed)])
        capsys.readouterr()
        mjlab_train_main()
        return capsys.readouterr().out

    program = "python -m dagmix.integrations.mjlab_train"
    distill, dagger_ppo = handoff.doc_commands(program, TEACHER=teacher, DISTILLED="")
    assert distill[3] == "Mjlab-Cartpole-Balance-Dagmix" and dagger_ppo[3] == "Mjlab-Cartpole-Balance-Dagmix-DAggerPPO"
    run(distill, seed=1)
    (distilled,) = glob.glob(str(tmp_path / "logs" / "rsl_rl" / "cartpole_distillation" / "*" / "model_1.pt"))
    distilled = os.path.relpath(distilled, tmp_path)  # as the page writes it: logs/rsl_rl/...
    _, dagger_ppo = handoff.doc_commands(program, TEACHER=teacher, DISTILLED=distilled)
    out = run(dagger_ppo, seed=2)  # another seed than the distillation's: a fresh actor would start elsewhere
    (run_dir,) = glob.glob(str(tmp_path / "logs" / "rsl_rl" / "cartpole_dagger_ppo" / "*"))
    handoff.check_handoff(run_dir, out, distilled, teacher, iterations=2)


def test_register_rejects_unknown_terms_and_tasks():
    with pytest.raises(ValueError, match=r"Unknown observation term\(s\) \['pole_vell'\]; the actor group has: "):
        register_distillation_task("X-Distill", "Mjlab-Cartpole-Balance", student_terms=("pole_vell",))
    with pytest.raises(ValueError, match=r"Unknown mjlab task 'Mjlab-Nope'"):
        register_distillation_task("Y-Distill", "Mjlab-Nope")


def test_mixing_cfg_passes_only_the_chosen_schedules_parameters():
    linear = dataclasses.asdict(MixingCfg(schedule="linear", iterations=50))
    assert mixing_dict(linear) == {
        "schedule": "linear",
        "iterations": 50,
        "granularity": "step",
        "assignment": "random",
    }
    two_stage = dataclasses.asdict(MixingCfg(phase1_iterations=7, granularity="episode", seed=3))
    assert mixing_dict(two_stage) == {
        "schedule": "two_stage",
        "phase1_iterations": 7,
        "granularity": "episode",
        "assignment": "random",
        "seed": 3,
    }
    with pytest.raises(ValueError, match=r"'two_stage' does not take \['decay'\]"):
        mixing_dict(dataclasses.asdict(MixingCfg(decay=0.9)))
    with pytest.raises(ValueError, match=r"'stepp' is not one of"):
        mixing_dict(dataclasses.asdict(MixingCfg(schedule="stepp")))


def test_algorithm_cfg_mirrors_the_learning_rate_and_averaging_keys():
    from dagmix.algorithms.ema import WeightAveragingConfig
    from dagmix.integrations.mjlab_tasks import DagmixDistillationAlgorithmCfg
    from dagmix.mixing.options import LearningRateScheduleConfig

    mine = dataclasses.asdict(DagmixDistillationAlgorithmCfg())
    for schema in (LearningRateScheduleConfig(), WeightAveragingConfig()):
        for key, default in dataclasses.asdict(schema).items():
            assert mine[key] == default, key  # same name, same default
