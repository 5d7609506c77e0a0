"""Smoke tests: the benchmark scripts run end to end with tiny sizes."""

from __future__ import annotations

import json
import math

import pytest

from dagmix.benchmarks import overhead


def test_overhead_benchmark_smoke(tmp_path):
    out = tmp_path / "o.json"
    argv = ["--num-envs", "32", "--modes", "student_only", "quota", "--iterations", "1", "--repeats", "1"]
    overhead.main([*argv, "--steps-per-env", "4", "--student", "mlp", "--task", "point_mass", "--json-out", str(out)])
    results = json.loads(out.read_text())
    assert [r["mode"] for r in results] == ["student_only", "quota"]
    assert all(r["median_ratio"] > 0 and r["num_envs"] == 32 for r in results)


def test_overhead_benchmark_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode='sometimes' is not one of"):
        overhead.main(["--num-envs", "8", "--modes", "sometimes", "--repeats", "1"])


def test_overhead_benchmark_on_the_quadcopter_with_the_shipped_teacher():
    argv = ["--num-envs", "32", "--modes", "step", "--iterations", "1", "--repeats", "2", "--steps-per-env", "8"]
    (res,) = overhead.run(overhead.parse_args(argv))
    assert res["mode"] == "step" and res["student"] == "gru" and len(res["ratios"]) == 2


# ------------------------------------------------------------------------------------------ compare_schedules
def _compare_argv(out, *extra):
    return [
        *("--schedules", "two_stage_third", "dagger_linear_episode", "--seeds", "2", "--iterations", "3"),
        *("--num-envs", "16", "--steps-per-env", "4", "--eval-interval", "2", "--eval-episodes", "8"),
        *("--final-eval-episodes", "8", "--workers", "1", "--out-dir", str(out)),
        *("--env-overrides", "episode_length_s=1.0"),
        *extra,
    ]


def test_compare_schedules_smoke_outputs_exist_parse_and_resume(tmp_path, capsys):
    import csv

    from dagmix.benchmarks import compare_schedules

    compare_schedules.main(_compare_argv(tmp_path))
    # a progress line per evaluation, while the run's own output goes to its log
    out = capsys.readouterr().out
    for it in (1, 2, 3):
        assert f"[compare] two_stage_third seed 1: iteration {it}/3, student alone return " in out
    assert "Learning iteration" not in out
    assert "[compare] dagger_linear_episode seed 0: iteration 3/3" in out
    rows = list(csv.DictReader((tmp_path / "per_iteration.csv").open()))
    assert len(rows) == 2 * 2 * 3  # variants x seeds x iterations
    by_key = {(r["variant"], r["seed"], r["iteration"]): r for r in rows}
    # two_stage at 1/3 of 3 iterations: the teacher drives iteration 0 only; evals at 0, 2 and the handover (0, 1)
    assert [float(by_key[("two_stage_third", "0", str(i))]["beta"]) for i in range(3)] == [1.0, 0.0, 0.0]
    assert float(by_key[("two_stage_third", "1", "0")]["teacher_fraction"]) == 1.0
    assert all(by_key[("two_stage_third", "0", str(i))]["eval_return"] != "" for i in range(3))
    assert all(float(r["eval_behavior_loss"]) >= 0 for r in rows if r["eval_behavior_loss"])
    summary = list(csv.DictReader((tmp_path / "summary.csv").open()))
    ratio = {r["variant"]: r for r in summary if r["metric"] == "final_return_ratio"}
    assert set(ratio) == {"two_stage_third", "dagger_linear_episode"} and ratio["two_stage_third"]["n"] == "2"
    md = (tmp_path / "summary.md").read_text()
    assert "| two_stage_third | StepSchedule(phase1_iterations=1) | 2 |" in md and "Welch" in md
    assert "| dagger_linear_episode | 2 |" in md  # the handover table: beta reaches 0 at iteration 2
    for name in ("learning_curves.png", "beta_teacher_fraction.png", "steps_to_threshold.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((tmp_path / "runs" / "two_stage_third" / "seed0.json").read_text())
    assert run["mixing"] == {"schedule": "two_stage", "phase1_iterations": 1} and run["first_zero_iteration"] == 1
    assert run["final"]["num_episodes"] == 8 and "behavior_loss" in run["final"]

    # resumable: a second call finds every run finished and only rewrites the reports
    before = (tmp_path / "runs" / "two_stage_third" / "seed1.json").stat().st_mtime_ns
    capsys.readouterr()
    compare_schedules.main(_compare_argv(tmp_path))
    assert "4/4 runs already finished; 0 to run" in capsys.readouterr().out
    assert (tmp_path / "runs" / "two_stage_third" / "seed1.json").stat().st_mtime_ns == before
    # a report of a subset, written elsewhere
    compare_schedules.main([*_compare_argv(tmp_path), "--report-only", "--report-dir", str(tmp_path / "rep")])
    assert "two_stage_third" in (tmp_path / "rep" / "summary.md").read_text()
    # other settings in the same folder are refused rather than mixed in
    with pytest.raises(SystemExit, match="produced with other settings"):
        compare_schedules.main([*_compare_argv(tmp_path), "--eval-interval", "1"])


def test_compare_schedules_variant_names():
    from dagmix.benchmarks.compare_schedules import parse_args, resolve_variant

    assert resolve_variant("two_stage_half", 300) == {"schedule": "two_stage", "phase1_iterations": 150}
    assert resolve_variant("linear:iterations=100,granularity=episode", 300) == {
        "schedule": "linear",
        "iterations": 100,
        "granularity": "episode",
    }
    with pytest.raises(ValueError, match="Unknown schedule variant 'lineer'.*built-in variant"):
        resolve_variant("lineer", 10)
    with pytest.raises(ValueError, match="iterationz"):
        resolve_variant("linear:iterationz=100", 10)
    with pytest.raises(SystemExit):
        parse_args(["--schedules", "student_only", "student_only"])
    with pytest.raises(SystemExit):
        parse_args(["--env-overrides", "episode_lenght_s=1.0"])
    assert parse_args([]).schedules[0] == "student_only" and parse_args([]).seeds >= 5


def test_compare_schedules_variant_with_config_overrides():
    from dagmix.benchmarks.compare_schedules import Args, _train_cfg, resolve_variant

    v = resolve_variant("two_stage:phase1_iterations=60,algorithm.learning_rate=1e-3,student.rnn_hidden_dim=128", 300)
    assert v["overrides"] == {"algorithm.learning_rate": 1e-3, "student.rnn_hidden_dim": 128}
    cfg = _train_cfg(Args(), v, seed=0, variant="x")
    assert cfg["algorithm"]["learning_rate"] == 1e-3 and cfg["student"]["rnn_hidden_dim"] == 128
    assert cfg["algorithm"]["mixing"] == {"schedule": "two_stage", "phase1_iterations": 60}
    v = resolve_variant("student_only:algorithm.learning_rate_schedule=cosine", 300)
    assert _train_cfg(Args(), v, seed=0, variant="x")["algorithm"]["learning_rate_schedule"] == "cosine"
    v = resolve_variant("student_only:student.hidden_dims=[128,128],algorithm.gradient_length=8", 300)
    assert v["overrides"] == {"student.hidden_dims": [128, 128], "algorithm.gradient_length": 8}
    with pytest.raises(ValueError, match="Variant .*algorithm.learning_rat'"):
        resolve_variant("student_only:algorithm.learning_rat=1e-3", 300)


def test_compare_schedules_runs_are_reproducible_and_record_their_code(tmp_path, monkeypatch):
    from dagmix.benchmarks import compare_schedules

    argv = [*_compare_argv(tmp_path / "a"), "--schedules", "two_stage_third", "--seeds", "1"]
    compare_schedules.main(argv)
    compare_schedules.main([*_compare_argv(tmp_path / "b"), "--schedules", "two_stage_third", "--seeds", "1"])
    a, b = (json.loads((tmp_path / d / "runs" / "two_stage_third" / "seed0.json").read_text()) for d in "ab")
    # same code, same thread count, same settings: the same numbers, exactly
    assert a["final"] == b["final"] and a["iterations"] == b["iterations"] and a["config_hash"] == b["config_hash"]
    assert a["config"]["threads"] == 1 and a["code"]["source_hash"] == compare_schedules.code_version()["source_hash"]
    assert "commit" in a["code"] and "dirty" in a["code"]
    assert "Runs made by: " in (tmp_path / "a" / "summary.md").read_text()
    # --first-seed runs a later seed alone (its own episodes), next to the others
    compare_schedules.main([*argv, "--first-seed", "1"])
    c = json.loads((tmp_path / "a" / "runs" / "two_stage_third" / "seed1.json").read_text())
    assert c["seed"] == 1 and c["config_hash"] == a["config_hash"] and c["final"] != a["final"]
    with pytest.raises(SystemExit):
        compare_schedules.parse_args(["--first-seed", "-1"])
    # the thread count changes the numbers, so it is part of the settings
    with pytest.raises(SystemExit, match="produced with other settings"):
        compare_schedules.main([*argv, "--threads", "2"])
    # runs made by other code are refused unless asked for
    monkeypatch.setattr(compare_schedules, "code_version", lambda: {"commit": "x", "dirty": False, "source_hash": "y"})
    with pytest.raises(SystemExit, match="other dagmix code"):
        compare_schedules.main(argv)
    compare_schedules.main([*argv, "--allow-code-change"])


def _task_argv(out, task, *extra):
    return [
        *("--task", task, "--schedules", "two_stage_third", "student_only", "--seeds", "1", "--iterations", "3"),
        *("--num-envs", "8", "--steps-per-env", "8", "--eval-interval", "2", "--eval-episodes", "4"),
        *("--final-eval-episodes", "6", "--workers", "1", "--out-dir", str(out)),
        *extra,
    ]


def test_compare_schedules_task_pendulum_normalises_by_random_actions(tmp_path):
    import csv

    pytest.importorskip("gymnasium")
    from dagmix.benchmarks import compare_schedules
    from dagmix.benchmarks.run_records import return_ratio

    compare_schedules.main(_task_argv(tmp_path, "pendulum"))
    run = json.loads((tmp_path / "runs" / "two_stage_third" / "seed0.json").read_text())
    assert run["task"] == "pendulum" and run["config"]["task"] == "pendulum"
    assert run["config"]["num_envs"] == 8 and run["final"]["num_episodes"] == 6
    student, teacher, random = (run[k]["return_mean"] for k in ("final", "teacher_final", "random_final"))
    assert random < teacher - 500  # Pendulum-v1: random torques about -1200, the scripted teacher about -160
    assert run["random_eval"]["num_episodes"] == 4
    assert math.isnan(run["final"]["success_rate"])  # Pendulum reports no success
    expected = (student - random) / (teacher - random)
    assert return_ratio(run, student, "final") == pytest.approx(expected)
    summary = {
        r["variant"]: r
        for r in csv.DictReader((tmp_path / "summary.csv").open())
        if r["metric"] == "final_return_ratio"
    }
    assert float(summary["two_stage_third"]["mean"]) == pytest.approx(expected)
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("Task: pendulum.") and "uniformly random actions" in md
    # sizes not given are the task's (the example's defaults), and a task's runs are not the quadcopter's
    args = compare_schedules.parse_args(["--task", "pendulum"])
    assert (args.iterations, args.num_envs, args.steps_per_env) == (150, 64, 32)
    assert compare_schedules.parse_args([]).run_config() == {
        **{k: v for k, v in args.run_config().items() if k != "task"},
        **{"iterations": 200, "num_envs": 1024, "steps_per_env": 24, "eval_interval": 20},
        **{"eval_episodes": 256, "final_eval_episodes": 1000},
    }
    with pytest.raises(SystemExit):
        compare_schedules.parse_args(["--task", "pendulumm"])
    with pytest.raises(SystemExit):
        compare_schedules.parse_args(["--task", "pendulum", "--env-overrides", "g=9.0"])


# ------------------------------------------------------------------------------------------ compare_dagger_ppo
@pytest.mark.skipif(
    not __import__("dagmix.algorithms", fromlist=["compat"]).compat.PPO_WITH_MODELS, reason="needs rsl-rl-lib 5.x"
)
def test_compare_dagger_ppo_smoke_outputs_exist_parse_and_resume(tmp_path, capsys):
    import csv

    from dagmix.benchmarks import compare_dagger_ppo

    argv = [
        *("--seeds", "1", "--iterations", "3", "--num-envs", "16", "--steps-per-env", "4", "--eval-interval", "2"),
        *("--eval-episodes", "8", "--final-eval-episodes", "8", "--workers", "1", "--out-dir", str(tmp_path)),
        *("--env-overrides", "episode_length_s=1.0"),
    ]
    compare_dagger_ppo.main(argv)
    out = capsys.readouterr().out  # a progress line per evaluation of each variant
    for v in (*compare_dagger_ppo.DISTILLATION, *compare_dagger_ppo.DAGGER_PPO):
        assert f"[compare] {v} seed 0: iteration 3/3, student alone return " in out
    rows = list(csv.DictReader((tmp_path / "per_iteration.csv").open()))
    variants = {r["variant"] for r in rows}
    assert variants == {*compare_dagger_ppo.DISTILLATION, *compare_dagger_ppo.DAGGER_PPO}
    n = len(compare_dagger_ppo.DISTILLATION) + len(compare_dagger_ppo.DAGGER_PPO)
    assert n == 9 and len(rows) == n * 3
    rec = {int(r["iteration"]): r for r in rows if r["variant"] == "dagger_ppo_recommended"}
    assert [float(rec[i]["beta"]) for i in range(3)] == [1.0, 0.0, 0.0]  # the teacher drives the first 10%
    assert all(float(r["loss"]) >= 0 for r in rows)
    advisor = json.loads((tmp_path / "runs" / "advisor" / "seed0.json").read_text())["iterations"]
    assert all(0.0 <= r["imitation_weight"] <= 1.0 for r in advisor) and "explained_variance" in advisor[0]
    recipe = json.loads((tmp_path / "runs" / "recipe" / "seed0.json").read_text())
    # advisor keeps the constant rate its rows were made with; recipe is the defaults (the rate held for 0.67 of the
    # 3 iterations: its decay would start after iteration 2)
    assert [r["learning_rate"] for r in advisor] == [1e-3] * 3 == [r["learning_rate"] for r in recipe["iterations"]]
    assert recipe["algorithm"] == {}
    assert json.loads((tmp_path / "runs" / "advisor" / "seed0.json").read_text())["algorithm"] == {
        "learning_rate_schedule": "constant"
    }
    run = json.loads((tmp_path / "runs" / "dagger_ppo_fixed" / "seed0.json").read_text())
    assert run["imitation_coef"] == "1.0" and run["ppo_coef"] == "1.0" and run["final"]["num_episodes"] == 8
    assert "dagger_ppo_recommended" in (tmp_path / "summary.md").read_text()
    capsys.readouterr()
    compare_dagger_ppo.main(argv)  # finished runs are found, not run again
    assert f"{n}/{n} runs already finished" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        compare_dagger_ppo.main([*argv, "--schedules", "no_such_variant"])
    # the report reads the seeds that ran: --first-seed 1 runs and reports seed 1 only
    capsys.readouterr()
    compare_dagger_ppo.main([*argv, "--first-seed", "1", "--schedules", "dagger_ppo_fixed"])
    assert "0/1 runs already finished" in capsys.readouterr().out
    reported = {(r["variant"], r["seed"]) for r in csv.DictReader((tmp_path / "per_iteration.csv").open())}
    assert reported == {("dagger_ppo_fixed", "1")}  # not seed 0's finished run
    run1 = json.loads((tmp_path / "runs" / "dagger_ppo_fixed" / "seed1.json").read_text())
    assert run1["seed"] == 1 and run1["final"] != run["final"]


def test_compare_dagger_ppo_args_take_the_quadcopter_sizes_and_refuse_bad_ones():
    from dagmix.benchmarks import compare_dagger_ppo

    args = compare_dagger_ppo.parse_args([])  # sizes left unset: the schedule benchmark's (the quadcopter's)
    assert (args.iterations, args.num_envs, args.steps_per_env, args.eval_episodes) == (200, 1024, 24, 256)
    for bad in (["--first-seed", "-1"], ["--seeds", "0"], ["--task", "pendulum"], ["--eval-episodes", "0"]):
        with pytest.raises(SystemExit):
            compare_dagger_ppo.parse_args(bad)


# ------------------------------------------------------------------------------------------ hover_offset
def test_hover_offset_reports_the_teacher_and_bins_the_runs(tmp_path, capsys):
    from dagmix.benchmarks import hover_offset

    def run(folder, variant, seed, distance, success, task=None):
        path = tmp_path / folder / "runs" / variant / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"final": {"final_distance": distance, "success_rate": success}}
        path.write_text(json.dumps({**body, **({"task": task} if task else {})}))

    run("a", "student_only", 0, 0.069, 0.95)
    run("a", "student_only", 1, 0.070, 0.90)
    run("b", "two_stage", 0, 0.085, 0.70)
    run("b", "two_stage", 1, 0.5, 0.0)  # beyond --max-distance: left out
    run("b", "thrown", 0, 0.07, 0.1, task="quadcopter_thrown")  # another task: left out
    res = hover_offset.main(["--episodes", "8", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert res["runs"] == 3 and "3 quadcopter runs under" in out
    assert "| < 0.0705 | 2 | 0.900 / 0.925 / 0.950 |" in out and "| 0.08-0.09 | 1 | 0.700 / 0.700 / 0.700 |" in out
    assert res["correlation"] < -0.9
    teacher = res["teacher"]
    assert 0.0 < teacher["distance_mean"] < 0.2  # the shipped teacher hovers near the goal, not on it
    assert all(a >= abs(m) for a, m in zip(teacher["offset_abs_mean"], teacher["offset_mean"], strict=True))
    with pytest.raises(SystemExit):
        hover_offset.main(["--bins", "0.08", "0.07"])


def test_compare_dagger_ppo_runs_cue_doors_with_keys_after_the_variant(tmp_path, capsys):
    from dagmix.benchmarks import compare_dagger_ppo

    argv = [
        *("--task", "cue_doors", "--seeds", "1", "--iterations", "2", "--num-envs", "16", "--steps-per-env", "4"),
        *("--eval-interval", "1", "--eval-episodes", "8", "--final-eval-episodes", "8", "--workers", "1"),
        *("--out-dir", str(tmp_path), "--schedules", "advisor:imitation_floor=0.1,critic_warmup=None"),
    ]
    compare_dagger_ppo.main(argv)
    (path,) = (tmp_path / "runs").glob("advisor*/seed0.json")
    run = json.loads(path.read_text())
    keys = {"learning_rate_schedule": "constant", "imitation_floor": 0.1, "critic_warmup": None}
    assert run["task"] == "cue_doors" and run["algorithm"] == keys
    assert "Task: cue_doors." in (tmp_path / "summary.md").read_text()
    for bad in ("advisor:imitation_flor=0.1", "no_such_variant"):
        with pytest.raises(SystemExit):
            compare_dagger_ppo.main([*argv[:-1], bad])


def test_two_clones_sharing_the_venvs_each_import_their_own_code(tmp_path):
    """Sourcing scripts/_venv.sh puts the sourcing clone first on PYTHONPATH, never another clone's code."""
    import os
    import shutil
    import subprocess

    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "_venv.sh")
    seen = {}
    for name in ("clone_a", "clone_b"):
        (tmp_path / name / "scripts").mkdir(parents=True)
        shutil.copy(src, tmp_path / name / "scripts" / "_venv.sh")
        (tmp_path / name / "__init__.py").write_text(f"WHO = {name!r}\n")  # a clone's package root
        env = {**os.environ, "DAGMIX_PATHS": str(tmp_path / "paths"), "PYTHONPATH": ""}
        cmd = 'source scripts/_venv.sh && python3 -c "import dagmix, sys; print(dagmix.WHO)"'
        out = subprocess.run(["bash", "-c", cmd], cwd=tmp_path / name, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        seen[name] = out.stdout.strip()
    assert seen == {"clone_a": "clone_a", "clone_b": "clone_b"}
    assert len(os.listdir(tmp_path / "paths")) == 2  # one folder per clone path, outside the clones


@pytest.mark.skipif(
    not __import__("dagmix.algorithms", fromlist=["compat"]).compat.PPO_WITH_MODELS, reason="needs rsl-rl-lib 5.x"
)
def test_compare_dagger_ppo_handoff_distills_then_hands_the_student_over_and_resumes_at_its_second_stage(
    tmp_path, monkeypatch, capsys
):
    from dagmix.algorithms import MixingDAggerPPO
    from dagmix.benchmarks import compare_dagger_ppo, compare_schedules

    loaded, learned, distilled = [], [], []
    load, learn = MixingDAggerPPO._load_init_student, compare_schedules.run_one
    monkeypatch.setattr(MixingDAggerPPO, "_load_init_student", lambda self, p: (loaded.append(p), load(self, p))[1])
    monkeypatch.setattr(compare_schedules, "run_one", lambda *a, **k: (distilled.append(a[1]), learn(*a, **k))[1])
    from rsl_rl.runners import OnPolicyRunner

    ppo_learn = OnPolicyRunner.learn
    monkeypatch.setattr(
        OnPolicyRunner,
        "learn",
        lambda self, n, init_at_random_ep_len=False: (
            learned.append((n, init_at_random_ep_len)),
            ppo_learn(self, n, init_at_random_ep_len),
        )[1],
    )
    argv = [
        *("--task", "quadcopter_blind", "--seeds", "1", "--iterations", "5"),
        *("--num-envs", "16", "--steps-per-env", "4"),
        *("--eval-interval", "2", "--eval-episodes", "8", "--final-eval-episodes", "8", "--workers", "1"),
        *("--out-dir", str(tmp_path), "--env-overrides", "episode_length_s=1.0", "--schedules", "handoff"),
    ]
    compare_dagger_ppo.main(argv)
    runs = tmp_path / "runs" / "handoff"
    assert distilled == ["two_stage:phase1_iterations=1"]  # the task's two-stage default over 5 // 2 iterations
    assert loaded == [str(runs / "seed0.distillation.pt")] and learned[-1] == (3, True)  # the rest, out of step
    run = json.loads((runs / "seed0.json").read_text())
    assert [r["iteration"] for r in run["iterations"]] == [0, 1, 2, 3, 4] and run["init_at_random_ep_len"] is True
    assert run["distillation_stage"]["schedule"].startswith("StepSchedule(phase1_iterations=1")
    assert run["total_seconds"] >= run["train_seconds"] >= run["distillation_stage"]["train_seconds"]
    assert "loss" in run["iterations"][0] and "imitation_weight" in run["iterations"][2]
    (runs / "seed0.json").unlink()  # stopped after its distillation stage: only the second stage runs again
    compare_dagger_ppo.main(argv)
    assert len(distilled) == 1 and len(loaded) == 2 and (runs / "seed0.json").is_file()
    for bad in ("advisor:distill_iterations=2", "handoff:distill_iterations=5", "handoff:init_at_random_ep_len=1"):
        with pytest.raises(SystemExit):
            compare_dagger_ppo.parse_args([*argv[:-1], bad])
