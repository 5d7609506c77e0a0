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

from dagmix.cli.checkpoints import checkpoint_kind, load_file
from dagmix.cli.checks import check_device, check_writable_dir
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


def _run_params(checkpoint: str, name: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "params", name)


def _model_cfg(task: str, checkpoint: str, loaded: dict[str, Any], kind: str) -> tuple[dict[str, Any], str]:
    """Return the model config of a checkpoint of ``kind`` and where it came from.

    In order: stored in the checkpoint (``checkpoint["dagmix"]["model"]``, so a copied file is enough; not for
    MixingDAggerPPO's actor), the run's ``params/agent.json`` next to it, the task's default config.
    """
    stored = (loaded.get("dagmix") or {}).get("model") if kind != "dagger_ppo" else None
    if stored:
        return copy.deepcopy(stored), "the checkpoint"
    params = _run_params(checkpoint, "agent.json")
    if os.path.isfile(params):
        with open(params) as f:
            return json.load(f), params
    defaults = {"dagger_ppo": dagger_ppo_train_cfg, "ppo": teacher_train_cfg}
    return defaults.get(kind, distill_train_cfg)(task), f"the default {task} config"


def _env_hint(checkpoint: str) -> str:
    """Return a hint naming the env overrides of the run that made ``checkpoint`` (its params/env.json), or ''.

    Some overrides change the observations (``env.velocity_noise=None`` takes three from the student's); a checkpoint
    evaluated without them does not fit the env's shapes. A quadcopter run without a ``velocity_noise`` override
    may predate its default (0.05): the hint then also names ``env.velocity_noise=None``.
    """
    params = _run_params(checkpoint, "env.json")
    try:
        with open(params) as f:
            run_env = json.load(f)
        task, overrides = run_env.get("task"), run_env.get("overrides") or {}
    except (OSError, ValueError, AttributeError):
        return ""
    hint = ""
    if overrides:
        given = " ".join(f"env.{k}={v!r}" for k, v in overrides.items())
        hint = f" The run that made it set env overrides ({params}); pass the same: {given}."
    if task == "quadcopter" and "velocity_noise" not in overrides:
        hint += (
            " Runs made before the quadcopter's student observed a velocity estimate by default (velocity_noise "
            "0.05, CHANGELOG) have a 13-observation student: add env.velocity_noise=None."
        )
    return hint


def _load_state(model: torch.nn.Module, state: dict, checkpoint: str, source: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        reason = " ".join(str(e).split())[:300]
        raise SystemExit(
            f"dagmix: the weights in {checkpoint} do not fit the model config from {source}."
            f"{_env_hint(checkpoint)} Details: {reason}"
        ) from None


def load_models(
    task: str, checkpoint: str, loaded: dict[str, Any], device: str, env: Any
) -> tuple[dict[str, torch.nn.Module], str]:
    """Return a checkpoint's policies on ``device`` and what the checkpoint is.

    ``{"student": ..., "teacher": ...}`` of a distillation or MixingDAggerPPO checkpoint (whose actor is the
    student), ``{"teacher": ...}`` of a PPO checkpoint. ``env`` gives the observation shapes.
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
        models[name] = build_model(cfg[section], obs, groups, obs_set, env.num_actions)
        _load_state(models[name], loaded[f"{weights}_state_dict"], checkpoint, source)
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
    env = make_env(args.task, args.num_episodes, args.device, args.seed, _env_overrides(args.overrides, "eval"))
    loaded = load_file(args.checkpoint, args.device, args.unsafe_load)
    models, kind = load_models(args.task, args.checkpoint, loaded, args.device, env)
    print(f"[dagmix] {args.checkpoint}: {kind}")
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

    env = make_env(args.task, 1, "cpu", 0, _env_overrides(args.overrides, "export"))
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
    _load_state(runner.alg.get_policy(), state, args.checkpoint, source)
    runner.export_policy_to_onnx(out, "policy.onnx")
    runner.export_policy_to_jit(out, "policy.pt")
    print(f"[dagmix] exported the student to {out}/policy.onnx and {out}/policy.pt")
    return 0
