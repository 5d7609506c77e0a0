"""Check an ``isaaclab train`` two-stage distillation run: console phase lines, banner, logged scalars, checkpoint.

Run by ``scripts/test_isaaclab.sh`` with the Isaac Lab venv's Python (tensorboard and torch come with Isaac Lab):

    python scripts/check_isaaclab_e2e.py --log distill.log --run-dir logs/rsl_rl/EXP/RUN --phase1 2 --iterations 5
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BAR = "=" * 80


def console_events(text: str) -> list[str]:
    """Return the phase lines, banner lines and rsl_rl iteration headers of a console log, in order."""
    events = []
    for raw in ANSI.sub("", text).splitlines():
        line = raw.strip()
        if line.startswith(("Training Phase:", "Phase Iteration:", "SWITCHING TO PHASE 2", "Iteration: ")):
            events.append(line)
        elif m := re.fullmatch(r"Learning iteration (\d+)/(\d+)", line):
            events.append(f"Learning iteration {m[1]}/{m[2]}")
    return events


def expected_events(phase1: int, iterations: int) -> list[str]:
    """Return the events a fresh run of ``iterations`` iterations switching at ``phase1`` must print."""
    out = []
    for it in range(iterations):
        if it == phase1:
            out += ["SWITCHING TO PHASE 2: Now using STUDENT actions to update environment", f"Iteration: {it}"]
        if it < phase1:
            out += ["Training Phase: Phase 1 (teacher actions)", f"Phase Iteration: {it + 1}/{phase1} (Phase 1)"]
        else:
            out.append("Training Phase: Phase 2 (student actions)")
        out.append(f"Learning iteration {it}/{iterations}")
    return out


def check_console(text: str, phase1: int, iterations: int) -> list[str]:
    """Check the console log; return the lines worth showing (phase lines, banner, behaviour loss)."""
    got, want = console_events(text), expected_events(phase1, iterations)
    if got != want:
        sep = "\n        "
        raise AssertionError(f"console events differ:\n  got:  {sep.join(got)}\n  want: {sep.join(want)}")
    clean = ANSI.sub("", text)
    if clean.count(BAR + "\n" + BAR + "\n  SWITCHING TO PHASE 2") != 1:
        raise AssertionError("the switch banner (two bars, then the SWITCHING line) is not printed exactly once")
    losses = [float(v) for v in re.findall(r"Mean behavior loss: (\S+)", clean)]
    if len(losses) != iterations or not all(math.isfinite(v) for v in losses):
        raise AssertionError(f"expected {iterations} finite 'Mean behavior loss' lines, got {losses}")
    keep = ("Training Phase:", "Phase Iteration:", "SWITCHING", "Iteration: ", "Learning iteration", "Mean behavior")
    return [line.strip() for line in clean.splitlines() if line.strip().startswith(keep) or line.strip() == BAR]


def check_scalars(run_dir: str, phase1: int, iterations: int) -> dict[str, dict[int, float]]:
    """Check the tensorboard scalars of the run; return the checked series."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        raise AssertionError(f"no tensorboard event file in {run_dir}")
    acc = EventAccumulator(run_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    def series(tag: str) -> dict[int, float]:
        if tag not in tags:
            raise AssertionError(f"scalar {tag!r} was not logged; logged: {sorted(tags)}")
        return {e.step: e.value for e in acc.Scalars(tag)}

    its = range(iterations)
    want = {
        "Distillation/beta": {i: 1.0 if i < phase1 else 0.0 for i in its},
        "Distillation/teacher_fraction": {i: 1.0 if i < phase1 else 0.0 for i in its},
        "Distillation/training_phase": {i: 1.0 if i < phase1 else 2.0 for i in its},
        "Distillation/current_iteration": {i: float(i) for i in its},
    }
    got = {tag: series(tag) for tag in want}
    for tag in want:
        if got[tag] != want[tag]:
            raise AssertionError(f"{tag}: got {got[tag]}, want {want[tag]}")
    for tag, steps in [
        ("Loss/behavior", set(its)),
        ("Distillation/behavior_loss_teacher_driven", set(range(phase1))),
        ("Distillation/behavior_loss_student_driven", set(range(phase1, iterations))),
    ]:
        got[tag] = series(tag)
        if set(got[tag]) != steps or not all(math.isfinite(v) and v >= 0 for v in got[tag].values()):
            raise AssertionError(f"{tag}: got {got[tag]}, want finite values >= 0 at iterations {sorted(steps)}")
    return got


def check_run_dir(run_dir: str, phase1: int, iterations: int) -> None:
    """Check that the overrides reached the dumped agent config and that checkpoints hold the mixing state."""
    import torch
    import yaml

    with open(os.path.join(run_dir, "params", "agent.yaml")) as f:
        algorithm = yaml.load(f, Loader=yaml.FullLoader)["algorithm"]  # Isaac Lab writes python/tuple tags
    if algorithm["class_name"] != "dagmix.algorithms:MixingDistillation":
        raise AssertionError(f"algorithm.class_name is {algorithm['class_name']!r}")
    if algorithm["use_two_stage_training"] is not True or algorithm["phase1_iterations"] != phase1:
        raise AssertionError(f"the overrides did not reach the agent config: {algorithm}")
    last = os.path.join(run_dir, f"model_{iterations - 1}.pt")
    state = torch.load(last, map_location="cpu", weights_only=True)  # what dagmix loads with (checkpoint_io)
    if state.get("iter") != iterations - 1 or "format_version" not in state.get("dagmix", {}):
        raise AssertionError(f"{last} lacks the dagmix mixing state or has iter={state.get('iter')}")


def main(argv: list[str] | None = None) -> int:
    """Run every check; print the lines that show the run worked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="console output of the distillation run")
    parser.add_argument("--run-dir", required=True, help="the run's log folder (events file, params/, model_*.pt)")
    parser.add_argument("--phase1", type=int, required=True, help="phase1_iterations of the run")
    parser.add_argument("--iterations", type=int, required=True, help="max_iterations of the run")
    args = parser.parse_args(argv)
    with open(args.log, errors="replace") as f:
        text = f.read()
    shown = check_console(text, args.phase1, args.iterations)
    scalars = check_scalars(args.run_dir, args.phase1, args.iterations)
    check_run_dir(args.run_dir, args.phase1, args.iterations)
    print("[dagmix] console (phase lines, banner, behaviour loss):")
    print("\n".join(f"    {line}" for line in shown))
    print("[dagmix] tensorboard scalars (iteration: value):")
    for tag, values in scalars.items():
        print(f"    {tag}: " + ", ".join(f"{k}: {v:.4g}" for k, v in sorted(values.items())))
    print("[dagmix] e2e checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
