"""``dagmix eval`` and ``dagmix export``, and the env, model and table helpers the training commands share."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
from typing import Any

import torch

from dagmix.algorithms.checkpoint_io import state_dict_mismatch
from dagmix.cli.checkpoints import checkpoint_kind, load_file
from dagmix.cli.checks import check_device, check_writable_dir
from dagmix.cli.run_params import env_differences, params_path, run_agent, run_env
from dagmix.envs.task_configs import dagger_ppo_train_cfg, distill_train_cfg, teacher_train_cfg
from dagmix.mixing.overrides import apply_overrides


def make_env(task: str, num_envs: int, device: str, seed: int, env_overrides: dict[str, Any]) -> Any:
    """Return ``dagmix.envs.make(task, ...)``; a bad task or env override is a one-line error."""
    from dagmix.envs import make

    for name in ("num_envs", "device", "seed"):
        if name in env_overrides:
            raise SystemExit(f"dagmix: env.{name} is not an env config key; set it with --{name}.")
    try:
        return make(task, num_envs=num_envs, device=device, seed=seed, **env_overrides)
    except ValueError as e:
        raise SystemExit(f"dagmix: {e}") from e


def build_model(model_cfg: dict, obs: Any, obs_groups: dict, obs_set: str, num_actions: int) -> torch.nn.Module:
    """Build the rsl_rl model of ``model_cfg`` (its ``class_name`` and arguments) for the observation set."""
    from rsl_rl.utils import resolve_callable

    cfg = dict(model_cfg)
    cls = resolve_callable(cfg.pop("class_name"))
    return cls(obs, obs_groups, obs_set, num_actions, **cfg)


def format_table(rows: dict[str, Any]) -> str:
    """Return the evaluation table: one row per policy (return, success rate, final distance, 95% CIs)."""
    lines = [f"{'policy':<10} {'return':>20} {'success rate':>20} {'final distance (m)':>22} {'episodes':>9}"]
    for name, r in rows.items():
        lines.append(
            f"{name:<10} {r.return_mean:>11.2f} ± {r.return_ci95:<6.2f}"
            f" {r.success_rate:>11.3f} ± {r.success_ci95:<6.3f}"
            f" {r.final_distance:>13.3f} ± {r.final_distance_ci95:<6.3f} {r.num_episodes:>9d}"
        )
    return "\n".join(lines) + "\n(± : half-width of the 95% CI: Student-t for means, Wilson for the success rate)"


def _model_cfg(task: str, checkpoint: str, loaded: dict[str, Any], kind: str) -> tuple[dict[str, Any], str]:
    """Return the model config of a checkpoint of ``kind`` and where it came from.

    In order: stored in the checkpoint (``checkpoint["dagmix"]["model"]``, so a copied file is enough), the run's
    ``params/agent.json`` next to it, the task's default config.
    """
    stored = (loaded.get("dagmix") or {}).get("model")
    if stored and (kind != "dagger_ppo" or "actor" in stored):  # older MixingDAggerPPO files store none
        return copy.deepcopy(stored), "the checkpoint"
    params = params_path(checkpoint, "agent.json")
    recorded = run_agent(checkpoint)
    if recorded is not None:
        return recorded, params
    defaults = {"dagger_ppo": dagger_ppo_train_cfg, "ppo": teacher_train_cfg}
    return defaults.get(kind, distill_train_cfg)(task), f"the default {task} config"


def _env_hint(checkpoint: str, task: str, given: dict[str, Any] | None) -> str:
    """Return a hint at the env settings under which ``checkpoint``'s weights fit (from its params/env.json), or ''.

    Some overrides change the observations (``env.velocity_noise=None`` takes three from the student's); a checkpoint
    evaluated without them does not fit the env's shapes. ``given``: this command's env overrides. The hint never
    asks for an override that was passed.
    """
    given = json.loads(json.dumps(given or {}, default=str))  # as the run's overrides read back from JSON
    recorded = run_env(checkpoint)
    hint = ""
    run_task, run_overrides = recorded if recorded is not None else (task, {})
    if recorded is not None:
        params = params_path(checkpoint, "env.json")
        missing = {k: v for k, v in run_overrides.items() if k not in given or given[k] != v}
        if missing:
            shown = " ".join(f"env.{k}={v!r}" for k, v in missing.items())
            hint = f" The run that made it set env overrides ({params}); pass the same: {shown}."
        extra = [f"env.{k}={v!r}" for k, v in given.items() if k not in run_overrides]
        if extra:
            hint += f" It did not set {' '.join(extra)} (passed here)."
        if run_task != task:
            hint += f" It ran --task {run_task} (passed {task})."
    if run_task != "quadcopter" or task != "quadcopter" or run_overrides.get("velocity_noise", 0) is None:
        return hint
    if "velocity_noise" in given and given["velocity_noise"] is None:
        hint += (
            " env.velocity_noise=None (passed) takes the velocity estimate from the student's observations (13 "
            "instead of 16): drop it for a student trained with the default velocity_noise."
        )
    elif "velocity_noise" not in given:
        hint += (
            " Runs made before the quadcopter's student observed a velocity estimate by default (velocity_noise "
            "0.05, CHANGELOG) have a 13-observation student: add env.velocity_noise=None."
        )
    return hint


def _load_state(
    model: torch.nn.Module, state: dict, checkpoint: str, source: str, task: str, given: dict[str, Any] | None
) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        reason = " ".join(str(e).split())[:300]
        raise SystemExit(
            f"dagmix: the weights in {checkpoint} do not fit the model config from {source} "
            f"({state_dict_mismatch(e)}).{_env_hint(checkpoint, task, given)} Details: {reason}"
        ) from None


def load_models(
    task: str, checkpoint: str, loaded: dict[str, Any], device: str, env: Any, env_overrides: dict | None = None
) -> tuple[dict[str, torch.nn.Module], str]:
    """Return a checkpoint's policies on ``device`` and what the checkpoint is.

    ``{"student": ..., "teacher": ...}`` of a distillation or MixingDAggerPPO checkpoint (whose actor is the
    student), ``{"teacher": ...}`` of a PPO checkpoint. ``env`` (made with ``env_overrides``) gives the observation
    shapes.
    """
    kind = checkpoint_kind(loaded)
    # per policy: the model config section, the observation set and the checkpoint entry of its weights
    if kind == "dagger_ppo":
        policies = {"student": ("actor", "actor", "actor"), "teacher": ("teacher", "teacher", "teacher")}
        description = "MixingDAggerPPO checkpoint"
    elif kind == "ppo":
        policies = {"teacher": ("actor", "teacher", "actor")}
        description = "PPO checkpoint: evaluating the teacher alone"
    elif kind == "distillation":
        policies = {"student": ("student", "student", "student"), "teacher": ("teacher", "teacher", "teacher")}
        description = "distillation checkpoint"
    else:
        raise SystemExit(f"dagmix: {checkpoint} is neither a PPO nor a distillation checkpoint.")
    cfg, source = _model_cfg(task, checkpoint, loaded, kind)
    if kind == "ppo":
        groups = {"teacher": ["teacher"]}
    else:
        groups = cfg.get("obs_groups") or {"student": ["policy"], "teacher": ["teacher"]}
        groups = {obs_set: list(groups[obs_set]) for _, obs_set, _ in policies.values()}
    obs, models = env.get_observations(), {}
    for name, (section, obs_set, weights) in policies.items():
        # a multi-teacher's weights are in the file: its experts' checkpoint paths (of the run's clone) are not read
        model_cfg = {k: v for k, v in cfg[section].items() if k != "checkpoints"}
        models[name] = build_model(model_cfg, obs, groups, obs_set, env.num_actions)
        _load_state(models[name], loaded[f"{weights}_state_dict"], checkpoint, source, task, env_overrides)
    return {name: model.to(device) for name, model in models.items()}, description


def _env_overrides(overrides: list[str], command: str) -> dict[str, Any]:
    """Return the ``env.key=value`` overrides of eval or export as a dict; any other key is an error."""
    models_cfg = [o for o in overrides if not o.startswith("env.")]
    if models_cfg:
        raise SystemExit(
            f"dagmix: {command} takes env.key=value overrides only; {models_cfg[0]!r} would change the models, whose "
            "config is read from the checkpoint (or its run's params/agent.json)."
        )
    env_over: dict[str, Any] = {}
    try:
        apply_overrides({}, env_over, overrides)
    except ValueError as e:
        raise SystemExit(f"dagmix: {e}") from None
    return env_over


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate the student alone and the teacher alone from a checkpoint; print (and write) the table."""
    from dagmix.envs.evaluation import evaluate_policy

    if args.num_episodes < 1:
        raise SystemExit(f"dagmix: --num_episodes={args.num_episodes} must be >= 1")
    check_device(args.device)
    if args.json:
        if os.path.isdir(args.json):
            raise SystemExit(f"dagmix: --json {args.json!r} is a directory; pass a file path such as eval.json.")
        check_writable_dir(os.path.dirname(os.path.abspath(args.json)), "--json (its folder)")
    env_over = _env_overrides(args.overrides, "eval")
    env = make_env(args.task, args.num_episodes, args.device, args.seed, env_over)
    loaded = load_file(args.checkpoint, args.device, args.unsafe_load)
    models, kind = load_models(args.task, args.checkpoint, loaded, args.device, env, env_over)
    print(f"[dagmix] {args.checkpoint}: {kind}")
    diffs = env_differences(args.checkpoint, args.task, env_over)
    if diffs:  # e.g. a run trained on other dynamics, evaluated on the defaults: say so, once
        print(
            f"[dagmix] note: this evaluation's env differs from the run that made the checkpoint "
            f"({params_path(args.checkpoint, 'env.json')}): {'; '.join(diffs)}. Pass the run's env overrides to "
            "evaluate it on its own env."
        )
    rows = {name: evaluate_policy(env, m, args.num_episodes) for name, m in models.items()}
    print(format_table(rows))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({name: r.to_dict() for name, r in rows.items()}, f, indent=2)
        print(f"[dagmix] wrote {args.json}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the student of a distillation (or MixingDAggerPPO) checkpoint as ONNX and TorchScript."""
    from rsl_rl.runners import DistillationRunner

    env_over = _env_overrides(args.overrides, "export")
    env = make_env(args.task, 1, "cpu", 0, env_over)
    loaded = load_file(args.checkpoint, "cpu", args.unsafe_load)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "exported")
    kind = checkpoint_kind(loaded)
    if kind not in ("distillation", "dagger_ppo"):
        raise SystemExit(f"dagmix: {args.checkpoint} is not a distillation checkpoint (no student_state_dict).")
    model_cfg, source = _model_cfg(args.task, args.checkpoint, loaded, kind)
    cfg = distill_train_cfg(args.task)
    if kind == "dagger_ppo":  # the actor is the student: exported through a plain Distillation runner around it
        cfg["algorithm"] = {"class_name": "Distillation", "gradient_length": cfg["num_steps_per_env"]}
        cfg["student"], state = copy.deepcopy(model_cfg["actor"]), loaded["actor_state_dict"]
    else:
        cfg.update({k: model_cfg[k] for k in ("obs_groups", "student", "teacher") if model_cfg.get(k)})
        cfg["algorithm"], state = {"class_name": "Distillation"}, loaded["student_state_dict"]
    with contextlib.redirect_stdout(io.StringIO()):
        runner = DistillationRunner(env, cfg, None, "cpu")
    _load_state(runner.alg.get_policy(), state, args.checkpoint, source, args.task, env_over)
    runner.export_policy_to_onnx(out, "policy.onnx")
    runner.export_policy_to_jit(out, "policy.pt")
    print(f"[dagmix] exported the student to {out}/policy.onnx and {out}/policy.pt")
    return 0
