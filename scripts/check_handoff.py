"""The distill -> teacher-guided RL hand-off of docs/dagger_ppo.md, run as written and checked (Isaac Lab and mjlab).

The commands are read from the hand-off section of ``docs/dagger_ppo.md`` (``$TEACHER`` and ``$DISTILLED`` filled in,
only size flags appended), so the page shows exactly what is tested. Run by ``scripts/test_isaaclab.sh`` with the
Isaac Lab venv's Python after its PPO teacher stage::

    python scripts/check_handoff.py --teacher logs/rsl_rl/dagmix_cartpole_teacher/RUN/model_2.pt --workdir WORK

``tests/test_mjlab_e2e.py`` imports :func:`doc_commands` and :func:`check_handoff` for the mjlab commands.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import shlex
import string
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "dagger_ppo.md")
SECTION = "## The hand-off from Isaac Lab and mjlab"
ISAACLAB_SIZE = ["--num_envs", "8", "--max_iterations", "2"]
"""Appended to the documented Isaac Lab commands (with ``--seed``): a tiny run."""


def doc_commands(program: str, path: str = DOC, **variables: str) -> list[list[str]]:
    """Return the commands of the hand-off section that start with ``program``, split as the shell would.

    Continuation lines are joined and comments dropped; ``$NAME`` is replaced by ``variables[NAME]`` (a placeholder
    without a value is an error).
    """
    with open(path) as f:
        text = f.read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```bash\n(.*?)```", text[start : end if end > 0 else None], re.S)
    out = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(program + " "):
                out.append([string.Template(tok).substitute(variables) for tok in shlex.split(line)])
    if not out:
        raise AssertionError(f"no command starting with {program!r} in the hand-off section of {path}")
    return out


def adam_step_bound(steps: int, betas: tuple[float, float] = (0.9, 0.999)) -> float:
    """Return the largest total change of one weight, in units of the learning rate, after ``steps`` Adam steps.

    Per step ``|m_t / (1 - b1^t)| / sqrt(v_t / (1 - b2^t))`` is at most
    ``(1 - b1) / sqrt(1 - b2) * sqrt(sum_k (b1^2 / b2)^k) * sqrt(1 - b2^t) / (1 - b1^t)`` (Cauchy-Schwarz), whatever
    the gradients; the bound is the sum over the steps.
    """
    b1, b2 = betas
    total = 0.0
    for t in range(1, steps + 1):
        geometric = sum((b1 * b1 / b2) ** k for k in range(t))
        total += (1 - b1) / math.sqrt(1 - b2) * math.sqrt(geometric) * math.sqrt(1 - b2**t) / (1 - b1**t)
    return total


def _distance(ours: dict, theirs: dict, skip: tuple[str, ...] = ()) -> float:
    """Return the largest absolute difference of the shared weights (keys starting with ``skip`` left out)."""
    keys = [k for k in ours if not k.startswith(skip)]
    if set(keys) != {k for k in theirs if not k.startswith(skip)}:
        raise AssertionError(f"the weights differ in their keys: {sorted(set(keys) ^ set(theirs))}")
    return max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in keys)


def check_weights(handoff: dict, distilled: dict, teacher: dict, agent: dict) -> dict[str, float]:
    """Check that the hand-off's last checkpoint started from the distilled student, its std and the teacher's critic.

    Every optimizer step moves a weight by at most ``adam_step_bound`` learning rates, so the last actor lies within
    that distance of ``distilled["student_state_dict"]`` (the std of ``init_student_std``) and the critic of
    ``teacher["critic_state_dict"]``; an actor or critic that started anywhere else (another seed's initialisation)
    lies further away. The observation normalizer's statistics are updated by the rollouts, not the optimizer: its
    sample count must have grown from the distilled one.
    """
    algorithm = agent["algorithm"]
    if algorithm["schedule"] != "fixed" or algorithm.get("optimizer", "adam") != "adam":
        raise AssertionError(f"the bound needs Adam at a fixed learning rate: {algorithm}")
    steps = (handoff["iter"] + 1) * algorithm["num_learning_epochs"] * algorithm["num_mini_batches"]
    bound = algorithm["learning_rate"] * adam_step_bound(steps) * 1.001
    student, actor = dict(distilled["student_state_dict"]), handoff["actor_state_dict"]
    std = algorithm["init_student_std"]
    for key in ("distribution.std_param", "distribution.log_std_param"):
        if key in student and std is not None:
            student[key] = student[key].new_full(student[key].shape, std if "log" not in key else math.log(std))
    got = {
        "actor - distilled student": _distance(actor, student, skip=("obs_normalizer.",)),
        "critic - teacher's critic": _distance(handoff["critic_state_dict"], teacher["critic_state_dict"]),
    }
    for what, distance in got.items():
        if not distance <= bound:
            raise AssertionError(f"{what}: {distance:.4g} apart, more than {steps} Adam steps can move ({bound:.4g})")
    if "obs_normalizer.count" in actor and not actor["obs_normalizer.count"] > student["obs_normalizer.count"]:
        raise AssertionError("the actor's observation normalizer did not start from the distilled one's statistics")
    return {**got, "bound": bound}


def check_scalars(run_dir: str, iterations: int) -> dict[str, dict[int, float]]:
    """Check the hand-off's tensorboard scalars: the warm-up factor and the recipe's values at every iteration."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    got = {}
    for tag in (
        "Distillation/ppo_warmup",
        "Distillation/explained_variance",
        "Distillation/beta",
        "Distillation/imitation_coef",
        "Distillation/imitation_weight",
        "Loss/imitation",
    ):
        if tag not in tags:
            raise AssertionError(f"scalar {tag!r} was not logged; logged: {sorted(tags)}")
        got[tag] = {e.step: e.value for e in acc.Scalars(tag)}
        if sorted(got[tag]) != list(range(iterations)) or not all(map(math.isfinite, got[tag].values())):
            raise AssertionError(f"{tag}: want a finite value at iterations 0..{iterations - 1}, got {got[tag]}")
    warmup = [got["Distillation/ppo_warmup"][i] for i in range(iterations)]
    if not (0.0 <= warmup[0] < 1.0 and warmup == sorted(warmup) and warmup[-1] <= 1.0):
        raise AssertionError(f"Distillation/ppo_warmup should start below 1 and not decrease: {warmup}")
    if set(got["Distillation/beta"].values()) != {0.0} or set(got["Distillation/imitation_coef"].values()) != {1.0}:
        raise AssertionError(f"the recipe's defaults (student drives, imitation_coef 1) were not used: {got}")
    return got


def check_handoff(run_dir: str, log: str, distilled_path: str, teacher_path: str, iterations: int) -> list[str]:
    """Run every check on a finished hand-off run (its folder and console output); return the lines to show."""
    import torch
    import yaml

    with open(os.path.join(run_dir, "params", "agent.yaml")) as f:
        agent = yaml.load(f, Loader=yaml.FullLoader)  # Isaac Lab writes python/tuple tags
    algorithm = agent["algorithm"]
    if algorithm["class_name"] != "dagmix.algorithms:MixingDAggerPPO" or algorithm["init_student"] != distilled_path:
        raise AssertionError(f"the run is not MixingDAggerPPO from init_student={distilled_path!r}: {algorithm}")
    lines = [
        f"[dagmix] actor initialised from init_student={distilled_path!r} (its student_state_dict)",
        "[dagmix] critic initialised from the teacher's PPO checkpoint",
    ]
    for line in lines:
        if line not in log:
            raise AssertionError(f"the console lacks {line!r}")
    found = [int(m[1]) for p in glob.glob(os.path.join(run_dir, "model_*.pt")) if (m := re.search(r"_(\d+)\.pt$", p))]
    if max(found, default=-1) != iterations - 1:
        raise AssertionError(f"want checkpoints up to model_{iterations - 1}.pt in {run_dir}, got {sorted(found)}")

    def load(path: str) -> dict:
        return torch.load(path, map_location="cpu", weights_only=True)

    last = load(os.path.join(run_dir, f"model_{iterations - 1}.pt"))
    weights = check_weights(last, load(distilled_path), load(teacher_path), agent)
    scalars = check_scalars(run_dir, iterations)
    shown = lines + [f"{k}: {v:.4g}" for k, v in weights.items()]
    return shown + [f"{tag}: " + ", ".join(f"{k}: {v:.4g}" for k, v in sorted(s.items())) for tag, s in scalars.items()]


def _run(cmd: list[str], log_path: str, cwd: str) -> str:
    """Run ``cmd`` in ``cwd``, keep its output in ``log_path``; raise with its tail if it fails."""
    t = time.time()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    with open(log_path, errors="replace") as f:
        text = f.read()
    print(f"[dagmix hand-off] {os.path.basename(log_path)}: exit {rc} after {time.time() - t:.0f} s", flush=True)
    if rc != 0:
        raise AssertionError(f"{shlex.join(cmd)} failed:\n" + "\n".join(text.splitlines()[-60:]))
    return text


def _last(pattern: str) -> str:
    """Return the newest path matching ``pattern`` (run folders are named by time)."""
    found = sorted(glob.glob(pattern))
    if not found:
        raise AssertionError(f"nothing matches {pattern}")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    """Run the Isaac Lab commands of docs/dagger_ppo.md at tiny size (distil, then hand off) and check the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="a PPO checkpoint of Dagmix-Cartpole (the teacher)")
    parser.add_argument("--workdir", required=True, help="where the runs write logs/rsl_rl/...")
    args = parser.parse_args(argv)
    teacher = os.path.abspath(args.teacher)
    os.makedirs(args.workdir, exist_ok=True)
    isaaclab = os.path.join(os.path.dirname(sys.executable), "isaaclab")  # the venv's own launcher

    def command(stage: int, distilled: str = "") -> list[str]:  # 0: distil, 1: the hand-off; with the size flags
        cmd = doc_commands("isaaclab train", TEACHER=teacher, DISTILLED=distilled)[stage]
        return [isaaclab, *cmd[1:], *ISAACLAB_SIZE, "--seed", str(stage + 1)]  # a fresh actor would differ

    _run(command(0), os.path.join(args.workdir, "distill.log"), args.workdir)
    distilled = _last(os.path.join(args.workdir, "logs/rsl_rl/dagmix_cartpole_distillation/*/model_1.pt"))
    log = _run(command(1, distilled), os.path.join(args.workdir, "handoff.log"), args.workdir)
    run_dir = os.path.dirname(_last(os.path.join(args.workdir, "logs/rsl_rl/dagmix_cartpole_dagger_ppo/*/model_1.pt")))
    for line in check_handoff(run_dir, log, distilled, teacher, iterations=2):
        print(f"    {line}")
    print("[dagmix hand-off] Isaac Lab: distil -> MixingDAggerPPO with init_student: checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
