"""The ``dagmix`` command's checkpoint loading and its ``eval`` and ``export`` sub-commands.

Also the helpers that ``dagmix distill`` and ``dagmix train-teacher`` share with them (env creation, the table).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
from typing import Any

import torch

from dagmix import _cli_checks
from dagmix.algorithms.checkpoint_io import CheckpointError
from dagmix.algorithms.checkpoint_io import load_checkpoint as load_checkpoint_file
from dagmix.envs.task_configs import apply_overrides, distill_train_cfg, teacher_train_cfg


def _make_env(task: str, num_envs: int, device: str, seed: int, env_overrides: dict[str, Any]) -> Any:
    from dagmix.envs import make

    for name in ("num_envs", "device", "seed"):
        if name in env_overrides:
            raise SystemExit(f"dagmix: env.{name} is not an env config key; set it with --{name}.")
    try:
        return make(task, num_envs=num_envs, device=device, seed=seed, **env_overrides)
    except ValueError as e:
        raise SystemExit(f"dagmix: {e}") from e


def _build_model(model_cfg: dict, obs: Any, obs_groups: dict, obs_set: str, num_actions: int) -> torch.nn.Module:
    from rsl_rl.utils import resolve_callable

    cfg = dict(model_cfg)
    cls = resolve_callable(cfg.pop("class_name"))
    return cls(obs, obs_groups, obs_set, num_actions, **cfg)


def _format_table(rows: dict[str, Any]) -> str:
    lines = [f"{'policy':<10} {'return':>20} {'success rate':>20} {'final distance (m)':>22} {'episodes':>9}"]
    for name, r in rows.items():
        lines.append(
            f"{name:<10} {r.return_mean:>11.2f} ± {r.return_ci95:<6.2f}"
            f" {r.success_rate:>11.3f} ± {r.success_ci95:<6.3f}"
            f" {r.final_distance:>13.3f} ± {r.final_distance_ci95:<6.3f} {r.num_episodes:>9d}"
        )
    return "\n".join(lines) + "\n(± : half-width of the 95% CI: Student-t for means, Wilson for the success rate)"


def _load_file(path: str, device: str, unsafe_load: bool) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True (or fully, with --unsafe_load); a bad file is a one-line error."""
    try:
        return load_checkpoint_file(path, map_location=device, unsafe_load=unsafe_load)
    except CheckpointError as e:
        raise SystemExit(f"dagmix: {e}") from None


def _model_cfg(task: str, checkpoint: str, loaded: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return the checkpoint's model config and where it came from.

    In order: stored in the checkpoint (``checkpoint["dagmix"]["model"]``, so a copied file is enough), the run's
    ``params/agent.json`` next to it, the task's default config.
    """
    stored = (loaded.get("dagmix") or {}).get("model")
    if stored:
        return copy.deepcopy(stored), "the checkpoint"
    params = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "params", "agent.json")
    if os.path.isfile(params):
        with open(params) as f:
            return json.load(f), params
    default = teacher_train_cfg(task) if "actor_state_dict" in loaded else distill_train_cfg(task)
    return default, f"the default {task} config"


def _env_hint(checkpoint: str) -> str:
    """Return a hint naming the env overrides of the run that made ``checkpoint`` (its params/env.json), or ''.

    Some overrides change the observations (``env.velocity_noise=None`` takes three from the student's); a checkpoint
    evaluated without them does not fit the env's shapes. A quadcopter run without a ``velocity_noise`` override
    may predate its default (0.05): the hint then also names ``env.velocity_noise=None``.
    """
    params = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "params", "env.json")
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


def _load_models(
    task: str, checkpoint: str, device: str, env: Any, unsafe_load: bool
) -> tuple[dict[str, torch.nn.Module], str]:
    loaded = _load_file(checkpoint, device, unsafe_load)
    if "actor_state_dict" in loaded and "teacher_state_dict" in loaded:  # MixingDAggerPPO: the actor is the student
        from dagmix.cli_dagger_ppo import load_models

        return load_models(task, checkpoint, loaded, device, env), "MixingDAggerPPO checkpoint"
    cfg, source = _model_cfg(task, checkpoint, loaded)
    obs = env.get_observations()
    if "actor_state_dict" in loaded:  # a PPO checkpoint: the teacher alone
        teacher = _build_model(cfg["actor"], obs, {"teacher": ["teacher"]}, "teacher", env.num_actions)
        _load_state(teacher, loaded["actor_state_dict"], checkpoint, source)
        return {"teacher": teacher.to(device)}, "PPO checkpoint: evaluating the teacher alone"
    if "student_state_dict" not in loaded:
        raise SystemExit(f"dagmix: {checkpoint} is neither a PPO nor a distillation checkpoint.")
    groups = cfg.get("obs_groups") or {"student": ["policy"], "teacher": ["teacher"]}
    student = _build_model(cfg["student"], obs, groups, "student", env.num_actions)
    _load_state(student, loaded["student_state_dict"], checkpoint, source)
    teacher = _build_model(cfg["teacher"], obs, groups, "teacher", env.num_actions)
    _load_state(teacher, loaded["teacher_state_dict"], checkpoint, source)
    return {"student": student.to(device), "teacher": teacher.to(device)}, "distillation checkpoint"


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
    _cli_checks.check_device(args.device)
    if args.json:
        if os.path.isdir(args.json):
            raise SystemExit(f"dagmix: --json {args.json!r} is a directory; pass a file path such as eval.json.")
        _cli_checks.check_writable_dir(os.path.dirname(os.path.abspath(args.json)), "--json (its folder)")
    env = _make_env(args.task, args.num_episodes, args.device, args.seed, _env_overrides(args.overrides, "eval"))
    models, kind = _load_models(args.task, args.checkpoint, args.device, env, args.unsafe_load)
    print(f"[dagmix] {args.checkpoint}: {kind}")
    rows = {name: evaluate_policy(env, m, args.num_episodes) for name, m in models.items()}
    print(_format_table(rows))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({name: r.to_dict() for name, r in rows.items()}, f, indent=2)
        print(f"[dagmix] wrote {args.json}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the student of a distillation checkpoint as ONNX and TorchScript."""
    from rsl_rl.runners import DistillationRunner

    env = _make_env(args.task, 1, "cpu", 0, _env_overrides(args.overrides, "export"))
    loaded = _load_file(args.checkpoint, "cpu", args.unsafe_load)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "exported")
    if "actor_state_dict" in loaded and "teacher_state_dict" in loaded:  # MixingDAggerPPO: export the actor
        from dagmix.cli_dagger_ppo import export

        export(args.task, args.checkpoint, loaded, out, env)
        print(f"[dagmix] exported the student to {out}/policy.onnx and {out}/policy.pt")
        return 0
    if "student_state_dict" not in loaded:
        raise SystemExit(f"dagmix: {args.checkpoint} is not a distillation checkpoint (no student_state_dict).")
    model_cfg, source = _model_cfg(args.task, args.checkpoint, loaded)
    cfg = distill_train_cfg(args.task)
    cfg.update({k: model_cfg[k] for k in ("obs_groups", "student", "teacher") if model_cfg.get(k)})
    cfg["algorithm"] = {"class_name": "Distillation"}
    with contextlib.redirect_stdout(io.StringIO()):
        runner = DistillationRunner(env, cfg, None, "cpu")
    _load_state(runner.alg.get_policy(), loaded["student_state_dict"], args.checkpoint, source)
    runner.export_policy_to_onnx(out, "policy.onnx")
    runner.export_policy_to_jit(out, "policy.pt")
    print(f"[dagmix] exported the student to {out}/policy.onnx and {out}/policy.pt")
    return 0


def periodic_eval(
    alg: Any,
    eval_env: Any,
    episodes: int,
    interval: int,
    last_it: int,
    log_dir: str,
    best: dict[str, Any],
    on_best: Any = None,
) -> Any:
    """Return the iteration callback that evaluates ``alg``'s student alone every ``interval`` iterations.

    A new best return updates ``best`` (``return``, ``iter``), calls ``on_best(it)`` if given and writes
    ``model_best.pt`` atomically; the callback prints one line and returns the ``Eval/student_*`` scalars to log.
    """
    from dagmix.algorithms.checkpoint_io import save_checkpoint
    from dagmix.envs.evaluation import evaluate_policy

    def evaluate(it: int, metrics: dict[str, float]) -> dict[str, float] | None:
        if it % interval != 0 and it != last_it:
            return None
        res = evaluate_policy(eval_env, alg.get_policy(), episodes)
        if res.return_mean > best["return"]:
            best.update(**{"return": res.return_mean, "iter": it})
            if on_best is not None:
                on_best(it)
            saved = alg.save()
            saved.update(iter=it, infos={"eval": res.to_dict()})
            save_checkpoint(saved, os.path.join(log_dir, "model_best.pt"))
        print(
            f"[dagmix] iteration {it}: student alone over {res.num_episodes} episodes: return "
            f"{res.return_mean:.2f} ± {res.return_ci95:.2f}, success {res.success_rate:.3f}, "
            f"final distance {res.final_distance:.3f} m"
        )
        return {
            "Eval/student_return": res.return_mean,
            "Eval/student_success_rate": res.success_rate,
            "Eval/student_final_distance": res.final_distance,
        }

    return evaluate
