"""Smoke tests: the demo command and the benchmark scripts run end to end with tiny sizes."""

from __future__ import annotations

import json

import pytest

from dagmix import cli
from dagmix.benchmarks import overhead


def test_demo_runs_two_stage_and_switches_at_the_configured_iteration(tmp_path, capsys):
    argv = ["demo", "--num-envs", "16", "--teacher-iterations", "2", "--iterations", "3", "--phase1-iterations", "2"]
    assert cli.main([*argv, "--log-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Phase Iteration: 2/2 (Phase 1)" in out
    assert "  Iteration: 2\n" in out and out.count("SWITCHING TO PHASE 2") == 1
    assert "[dagmix demo] teacher" in out and (tmp_path / "distill").is_dir()


def test_demo_rejects_bad_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--phase1-iterations", "-1"])
    assert "--phase1-iterations=-1 must be >= 0" in capsys.readouterr().err


def test_overhead_benchmark_smoke(tmp_path):
    out = tmp_path / "o.json"
    argv = ["--num-envs", "32", "--modes", "student_only", "quota", "--iterations", "1", "--repeats", "1"]
    overhead.main([*argv, "--steps-per-env", "4", "--student", "mlp", "--json-out", str(out)])
    results = json.loads(out.read_text())
    assert [r["mode"] for r in results] == ["student_only", "quota"]
    assert all(r["median_ratio"] > 0 and r["num_envs"] == 32 for r in results)


def test_overhead_benchmark_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode='sometimes' is not one of"):
        overhead.main(["--num-envs", "8", "--modes", "sometimes", "--repeats", "1"])
