"""Reports of the schedule comparison: per-iteration and summary CSVs, a Markdown table with 95% CIs, figures.

Statistics: every per-run figure (one number per seed) is summarized across seeds as mean ± half-width of the
95% Student-t confidence interval (scipy.stats.t, n-1 degrees of freedom). Differences between variants are
Welch's unequal-variance t-tests (scipy.stats.ttest_ind, equal_var=False), Holm-corrected over the comparisons of
one table; "significant" means a corrected p < 0.05.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from dagmix.benchmarks.run_records import THRESHOLDS, mean_ci, return_ratio
from dagmix.benchmarks.schedule_figures import write_figures

PER_ITERATION_FIELDS = [
    "variant",
    "seed",
    "iteration",
    "env_steps",
    "beta",
    "teacher_fraction",
    "loss",
    "loss_teacher_driven",
    "loss_student_driven",
    "adaptive_signal",
    "replay_loss",
    "estimator_loss",
    "eval_return",
    "eval_return_ratio",
    "eval_success",
    "eval_final_distance",
    "eval_behavior_loss",
]


def load_runs(
    out_dir: str, variants: Sequence[str], seeds: Sequence[int], path_of: Callable[[str, int], str]
) -> dict[str, list[dict[str, Any]]]:
    """Return the finished runs of ``seeds`` per variant (variants with no finished run are left out, with a note)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        found = []
        for seed in seeds:
            path = path_of(variant, seed)
            if os.path.isfile(path):
                with open(path) as f:
                    found.append(json.load(f))
        if len(found) < len(seeds):
            print(f"[report] {variant}: {len(found)}/{len(seeds)} seeds finished")
        if found:
            runs[variant] = found
    return runs


def holm(pvalues: Sequence[float]) -> list[float]:
    """Return Holm-Bonferroni adjusted p-values (same order as given; nan stays nan)."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    adjusted = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the two-sided p-value of Welch's t-test (nan when either side has < 2 values or no variance)."""
    a = [v for v in a if v is not None and math.isfinite(v)]
    b = [v for v in b if v is not None and math.isfinite(v)]
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


# ------------------------------------------------------------------------------------------------ per run
def _eval_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in run["iterations"] if r.get("eval_return") is not None]


def run_metrics(run: dict[str, Any]) -> dict[str, Any]:
    """Return one run's figures: final student-alone metrics, steps to thresholds, handover."""
    final = run["final"]
    m: dict[str, Any] = {
        "final_return": final["return_mean"],
        "final_return_ratio": return_ratio(run, final["return_mean"], "final"),
        "final_success": final["success_rate"],
        "final_distance": final["final_distance"],
        "final_behavior_loss": final.get("behavior_loss"),
        "teacher_return": run["teacher_final"]["return_mean"],
        "yardstick": run.get("yardstick", "separate"),
    }
    evals = _eval_rows(run)
    if evals:  # stability of the last iterate: how far the last periodic evaluation is below the best one
        best = max(r["eval_return"] for r in evals)
        m["best_eval_ratio"] = return_ratio(run, best)
        m["last_eval_ratio"] = return_ratio(run, evals[-1]["eval_return"])
        m["last_best_gap"] = m["best_eval_ratio"] - m["last_eval_ratio"]
    for thr in THRESHOLDS:
        hit = next((r for r in evals if return_ratio(run, r["eval_return"]) >= thr), None)
        m[f"steps_to_{round(thr * 100)}"] = None if hit is None else hit["env_steps"]
    # the first iteration with beta 0 as it happened (an adaptive schedule decides it during the run)
    seen_positive, zero = False, None
    for r in run["iterations"]:
        if r["beta"] > 0.0:
            seen_positive = True
        elif seen_positive:
            zero = r["iteration"]
            break
    rows = {r["iteration"]: r for r in run["iterations"]}
    if zero:  # the handover: the evaluation just before beta reaches 0 and the last one planned after it
        after_it = zero + max(run["config"]["handover_offsets"])
        before, after = rows.get(zero - 1, {}), rows.get(after_it, {})
        m.update(
            handover_iteration=zero,
            handover_after_iteration=after_it,
            handover_return_before=before.get("eval_return"),
            handover_return_after=after.get("eval_return"),
            handover_eval_loss_before=before.get("eval_behavior_loss"),
            handover_eval_loss_after=after.get("eval_behavior_loss"),
            handover_train_loss_before=before.get("loss_teacher_driven"),
            handover_train_loss_after=rows.get(zero, {}).get("loss_student_driven"),
        )
    return m


# ------------------------------------------------------------------------------------------------ writers
def write_reports(runs: dict[str, list[dict[str, Any]]], out_dir: str, order: Sequence[str], baseline: str) -> list:
    """Write per_iteration.csv, summary.csv, summary.md and the figures; return the written paths."""
    variants = [v for v in order if v in runs]
    metrics = {v: [run_metrics(r) for r in runs[v]] for v in variants}
    written = [_write_per_iteration(runs, variants, out_dir), _write_summary_csv(metrics, variants, out_dir)]
    written.append(_write_markdown(runs, metrics, variants, baseline, out_dir))
    written += write_figures(runs, metrics, variants, out_dir)
    return written


def _write_per_iteration(runs: dict[str, list[dict[str, Any]]], variants: Sequence[str], out_dir: str) -> str:
    path = os.path.join(out_dir, "per_iteration.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, PER_ITERATION_FIELDS)
        w.writeheader()
        for v in variants:
            for run in runs[v]:
                for row in run["iterations"]:
                    out = {k: row.get(k) for k in PER_ITERATION_FIELDS}
                    out.update(variant=v, seed=run["seed"])
                    if row.get("eval_return") is not None:
                        out["eval_return_ratio"] = return_ratio(run, row["eval_return"])
                    w.writerow(out)
    return path


SUMMARY_METRICS = [
    "final_return",
    "final_return_ratio",
    "final_success",
    "final_distance",
    "final_behavior_loss",
    "steps_to_90",
    "steps_to_95",
    "best_eval_ratio",
    "last_eval_ratio",
    "last_best_gap",
    "handover_return_before",
    "handover_return_after",
    "handover_eval_loss_before",
    "handover_eval_loss_after",
    "handover_train_loss_before",
    "handover_train_loss_after",
]


def _write_summary_csv(metrics: dict[str, list[dict[str, Any]]], variants: Sequence[str], out_dir: str) -> str:
    path = os.path.join(out_dir, "summary.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "metric", "mean", "ci95", "n", "seeds"])
        for v in variants:
            for key in SUMMARY_METRICS:
                values = [m.get(key) for m in metrics[v]]
                if all(x is None for x in values):
                    continue
                mean, ci, n = mean_ci(values)
                w.writerow([v, key, mean, ci, n, len(values)])
    return path


def _fmt(values: Sequence[Any], digits: int, scale: float = 1.0) -> str:
    mean, ci, n = mean_ci([None if x is None else x * scale for x in values])
    if n == 0:
        return "–"
    text = f"{mean:.{digits}f}" + ("" if not math.isfinite(ci) else f" ± {ci:.{digits}f}")
    if n < len(values):
        text += f" ({n}/{len(values)} reached)"
    return text


def _write_markdown(
    runs: dict[str, list[dict[str, Any]]],
    metrics: dict[str, list[dict[str, Any]]],
    variants: Sequence[str],
    baseline: str,
    out_dir: str,
) -> str:
    first = runs[variants[0]][0]
    cfg = first["config"]
    steps = cfg["iterations"] * cfg["num_envs"] * cfg["steps_per_env"]
    if "random_final" in first:  # a task whose returns are normalised by random actions' (dagmix.benchmarks.tasks)
        ratio = (
            f"(the student's mean return over {cfg['final_eval_episodes']} fresh episodes, driving alone, - that of "
            "uniformly random actions) / (the teacher's - random's), on the same episodes (0: random, 1: the teacher)"
        )
    else:
        ratio = (
            f"the student's mean return over {cfg['final_eval_episodes']} fresh episodes, driving alone, / the "
            "teacher's on the same episodes"
        )
    lines = [
        f"Task: {first.get('task', 'quadcopter')}. Budget per run: {cfg['iterations']} iterations x "
        f"{cfg['num_envs']} envs x {cfg['steps_per_env']} steps = {steps / 1e6:.1f} M env steps; student "
        f"{cfg['student']}; versions {first['versions']}.",
        "",
        f"Mean ± half-width of the 95% Student-t CI across seeds (n = seeds). Return ratio: {ratio}. "
        "Behaviour loss: MSE between the student's action and the teacher's on the states the student "
        "visits when it drives alone. Steps to X%: env steps until a periodic student-alone evaluation "
        f"({cfg['eval_episodes']} episodes, every {cfg['eval_interval']} iterations) first reached X% of the "
        "teacher's return; '(k/n reached)' averages only the seeds that reached it.",
        "",
        "| variant | schedule | seeds | return ratio | return | success rate | final distance (m) | "
        "behaviour loss (student states) | M steps to 90% | M steps to 95% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        ms = metrics[v]
        col = {k: [m.get(k) for m in ms] for k in SUMMARY_METRICS}
        lines.append(
            f"| {v} | {runs[v][0]['schedule']} | {len(ms)} | {_fmt(col['final_return_ratio'], 3)} | "
            f"{_fmt(col['final_return'], 1)} | {_fmt(col['final_success'], 3)} | {_fmt(col['final_distance'], 3)} | "
            f"{_fmt(col['final_behavior_loss'], 4)} | {_fmt(col['steps_to_90'], 1, 1e-6)} | "
            f"{_fmt(col['steps_to_95'], 1, 1e-6)} |"
        )
    lines += ["", *_stability_table(metrics, variants), ""]
    lines += [*_significance(metrics, variants, baseline), "", *_handover_table(metrics, variants)]
    lines += ["", _code_line(runs, variants)]
    path = os.path.join(out_dir, "summary.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _stability_table(metrics: dict[str, list[dict[str, Any]]], variants: Sequence[str]) -> list[str]:
    lines = [
        "Every seed's last student (final evaluation) and how far the last periodic evaluation fell below the best "
        "one (in units of the teacher's return). Yardstick `same episodes`: every periodic evaluation replays the "
        "episodes the teacher was evaluated on, and the final one runs student and teacher on the same episodes, so "
        "the ratios are paired; `separate`: runs made before that, each evaluation on its own episodes.",
        "",
        "| variant | seeds | min return ratio | max − min | min success | max last−best gap | mean last−best gap "
        "| yardstick |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        yardsticks = sorted({m.get("yardstick", "separate").replace("_", " ") for m in metrics[v]})
        ratios = [m["final_return_ratio"] for m in metrics[v]]
        success = [m["final_success"] for m in metrics[v]]
        gaps = [m["last_best_gap"] for m in metrics[v] if m.get("last_best_gap") is not None]
        gap_max = f"{max(gaps):.3f}" if gaps else "–"
        gap_mean = f"{sum(gaps) / len(gaps):.3f}" if gaps else "–"
        known = [x for x in success if not math.isnan(x)]  # nan: the task reports no success (e.g. Pendulum)
        success_min = f"{min(known):.3f}" if known else "–"
        lines.append(
            f"| {v} | {len(ratios)} | {min(ratios):.3f} | {max(ratios) - min(ratios):.3f} | {success_min} | "
            f"{gap_max} | {gap_mean} | {', '.join(yardsticks)} |"
        )
    return lines


def _code_line(runs: dict[str, list[dict[str, Any]]], variants: Sequence[str]) -> str:
    made = set()
    for v in variants:
        for run in runs[v]:
            code = run.get("code") or {}
            threads = (run.get("config") or {}).get("threads")
            dirty = "+uncommitted" if code.get("dirty") else ""
            source = code.get("source_hash")
            made.add(f"{code.get('commit') or 'unknown'}{dirty} (source {source}, {threads} thread(s))")
    return "Runs made by: " + "; ".join(sorted(made)) + "."


def _significance(metrics: dict[str, list[dict[str, Any]]], variants: Sequence[str], baseline: str) -> list[str]:
    lines = [
        "Significance (Welch's t-test, Holm-corrected over the pairs of each metric; corrected p < 0.05):",
        "",
    ]
    for key, label in (("final_return_ratio", "final return ratio"), ("final_behavior_loss", "behaviour loss")):
        pairs = [(a, b) for i, a in enumerate(variants) for b in variants[i + 1 :]]
        raw = [welch_p([m[key] for m in metrics[a]], [m[key] for m in metrics[b]]) for a, b in pairs]
        adj = holm(raw)
        sig = []
        for (a, b), p in zip(pairs, adj, strict=True):
            if math.isfinite(p) and p < 0.05:
                ma = mean_ci([m[key] for m in metrics[a]])[0]
                mb = mean_ci([m[key] for m in metrics[b]])[0]
                hi, lo = (a, b) if ma > mb else (b, a)
                sig.append(f"{hi} > {lo} (p={p:.3g})")
        lines.append(
            f"- {label}: " + ("; ".join(sig) if sig else f"no significant difference among {len(pairs)} pairs")
        )
        if baseline in variants:
            vs = []
            for v in variants:
                if v == baseline:
                    continue
                p = welch_p([m[key] for m in metrics[v]], [m[key] for m in metrics[baseline]])
                vs.append(f"{v} p={p:.3g}" if math.isfinite(p) else f"{v} p=n/a")
            lines.append(f"  - uncorrected p vs {baseline}: " + ", ".join(vs))
    return lines


def _handover_table(metrics: dict[str, list[dict[str, Any]]], variants: Sequence[str]) -> list[str]:
    rows = [v for v in variants if any(m.get("handover_iteration") for m in metrics[v])]
    if not rows:
        return []
    lines = [
        "Handover (z = first iteration with beta 0, as it happened; 'before' = after iteration z-1's update, 'after' "
        "= after iteration z+k's, k the largest handover offset). Student-alone eval return and behaviour loss on "
        "the student's own states; training loss on teacher-driven samples at z-1 vs student-driven samples at z. "
        "Adaptive schedules decide z during the run, so their extra evaluations were planned at the deadline "
        "instead; '–' where no evaluation fell on z-1 or z+k.",
        "",
        "| variant | z | return before | return after | eval loss before | eval loss after | train loss (teacher-"
        "driven, z-1) | train loss (student-driven, z) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in rows:
        ms = [m for m in metrics[v] if m.get("handover_iteration")]
        col = {k: [m.get(k) for m in ms] for k in SUMMARY_METRICS}
        lines.append(
            f"| {v} | {ms[0]['handover_iteration']} | {_fmt(col['handover_return_before'], 1)} | "
            f"{_fmt(col['handover_return_after'], 1)} | {_fmt(col['handover_eval_loss_before'], 4)} | "
            f"{_fmt(col['handover_eval_loss_after'], 4)} | {_fmt(col['handover_train_loss_before'], 4)} | "
            f"{_fmt(col['handover_train_loss_after'], 4)} |"
        )
    return lines
