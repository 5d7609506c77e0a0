"""Smoke tests: the benchmark scripts run end to end with tiny sizes."""

from __future__ import annotations

import json

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
