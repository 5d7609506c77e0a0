"""The figure ``dagmix distill`` writes beside the checkpoints: the periodic evaluations and beta over iterations."""

from __future__ import annotations

import os
from typing import Any

FIGURE_NAME = "eval.png"


def write_figure(log_dir: str, evals: list[dict[str, Any]], betas: list[tuple[int, float]]) -> str | None:
    """Write ``<log_dir>/eval.png`` and return its path; without matplotlib print one line and return None.

    Args:
        log_dir: The run folder.
        evals: One dict per periodic evaluation: ``iteration``, ``return_ratio`` (the student's return over the
            teacher's on the same episodes), ``success_rate``, ``teacher_success_rate``.
        betas: (iteration, beta) of every iteration.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: a file only
        import matplotlib.pyplot as plt
    except ImportError:
        print("[dagmix] no figure: matplotlib is not installed (pip install matplotlib)")
        return None
    fig, (ax_ret, ax_succ, ax_beta) = plt.subplots(3, 1, sharex=True, figsize=(7.0, 7.0))
    its = [e["iteration"] for e in evals]
    ax_ret.plot(its, [e["return_ratio"] for e in evals], marker="o", label="student alone")
    ax_ret.axhline(1.0, color="k", linestyle="--", linewidth=1, label="teacher (same episodes)")
    ax_ret.set_ylabel("return / teacher's")
    ax_ret.legend(loc="lower right")
    ax_succ.plot(its, [e["success_rate"] for e in evals], marker="o", label="student alone")
    ax_succ.plot(its, [e["teacher_success_rate"] for e in evals], "k--", linewidth=1, label="teacher (same episodes)")
    ax_succ.set_ylabel("success rate")
    ax_succ.legend(loc="lower right")
    ax_beta.step([i for i, _ in betas], [b for _, b in betas], where="post")
    ax_beta.set_ylabel("beta (teacher drives)")
    ax_beta.set_xlabel("iteration")
    ax_beta.set_ylim(-0.05, 1.05)
    fig.suptitle(os.path.basename(os.path.normpath(log_dir)))
    fig.tight_layout()
    path = os.path.join(log_dir, FIGURE_NAME)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
