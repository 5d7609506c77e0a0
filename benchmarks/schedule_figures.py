"""Figures of the schedule comparison: learning curves, beta vs realized teacher fraction, steps to thresholds.

Called by :func:`dagmix.benchmarks.schedule_report.write_reports`; statistics as there (mean and 95% Student-t
half-width across seeds, :func:`~dagmix.benchmarks.run_records.mean_ci`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dagmix.benchmarks.run_records import THRESHOLDS, mean_ci, return_ratio


def _curve(runs: list[dict[str, Any]], key: str, ratio: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (env steps, mean, 95% half-width) over seeds at the iterations every seed has ``key`` at."""
    per_it: dict[int, list[float]] = {}
    steps: dict[int, int] = {}
    for run in runs:
        for row in run["iterations"]:
            if row.get(key) is None:
                continue
            per_it.setdefault(row["iteration"], []).append(return_ratio(run, row[key]) if ratio else row[key])
            steps[row["iteration"]] = row["env_steps"]
    its = sorted(i for i, vals in per_it.items() if len(vals) == len(runs))
    stats_ = [mean_ci(per_it[i]) for i in its]
    mean = np.array([s[0] for s in stats_])
    ci = np.nan_to_num(np.array([s[1] for s in stats_]))
    return np.array([steps[i] for i in its], dtype=float), mean, ci


def write_figures(
    runs: dict[str, list[dict[str, Any]]], metrics: dict[str, list[dict[str, Any]]], variants: Sequence[str], out: str
) -> list[str]:
    """Write the three figures (PNG) of ``variants`` into ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab20").colors
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for i, v in enumerate(variants):
        for ax, key, ratio in ((axes[0], "eval_return", True), (axes[1], "eval_behavior_loss", False)):
            x, mean, ci = _curve(runs[v], key, ratio)
            ax.plot(x / 1e6, mean, label=v, color=colors[i % 20])
            ax.fill_between(x / 1e6, mean - ci, mean + ci, color=colors[i % 20], alpha=0.2)
    axes[0].set(xlabel="env steps (M)", ylabel="student-alone return / teacher return", title="Learning curves")
    axes[0].axhline(0.95, color="grey", ls=":", lw=1)
    axes[0].axhline(0.90, color="grey", ls="--", lw=1)
    axes[0].set_ylim(bottom=-0.05)
    axes[1].set(xlabel="env steps (M)", ylabel="MSE to teacher on student-driven states", yscale="log")
    axes[1].set_title("Behaviour loss on the student's own states")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Mean over seeds, shaded: 95% Student-t CI")
    fig.tight_layout()
    written.append(_save(fig, out, "learning_curves.png"))

    cols = min(4, len(variants))
    nrows = math.ceil(len(variants) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 2.6 * nrows), squeeze=False, sharey=True)
    for ax, v in zip(axes.flat, variants, strict=False):
        x, beta, _ = _curve(runs[v], "beta")
        _, frac, ci = _curve(runs[v], "teacher_fraction")
        ax.plot(x / 1e6, beta, color="k", lw=1.5, label="beta (schedule)")
        ax.plot(x / 1e6, frac, color="tab:orange", lw=1, ls="--", label="realized teacher fraction")
        ax.set_title(v, fontsize=9)
        ax.set_xlabel("env steps (M)", fontsize=8)
    for ax in axes.flat[len(variants) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out, "beta_teacher_fraction.png"))

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(variants)), 4.5))
    width = 0.38
    for j, thr in enumerate(THRESHOLDS):
        key = f"steps_to_{round(thr * 100)}"
        means, cis, labels = [], [], []
        for v in variants:
            vals = [m[key] for m in metrics[v]]
            mean, ci, n = mean_ci(vals)
            means.append(mean / 1e6 if n else 0.0)
            cis.append(ci / 1e6 if math.isfinite(ci) else 0.0)
            labels.append(f"{n}/{len(vals)}")
        xs = np.arange(len(variants)) + (j - 0.5) * width
        bars = ax.bar(xs, means, width, yerr=cis, capsize=3, label=f"{round(thr * 100)}% of teacher return")
        for b, lab in zip(bars, labels, strict=True):
            ax.annotate(lab, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=6)
    ax.set_xticks(np.arange(len(variants)), variants, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("env steps (M); labels: seeds that reached it")
    ax.set_title("Env steps until the student alone first reaches 90% / 95% of the teacher's return")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out, "steps_to_threshold.png"))
    return written


def _save(fig: Any, out_dir: str, name: str) -> str:
    import matplotlib.pyplot as plt

    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
