"""``dagmix distill --algorithm dagger_ppo``: MixingDAggerPPO under rsl_rl's OnPolicyRunner, evaluated as distillation.

Also loads and exports MixingDAggerPPO checkpoints for ``dagmix eval`` / ``dagmix export``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import time
from typing import Any

import torch

from dagmix.envs.task_configs import dagger_ppo_train_cfg, distill_train_cfg, shipped_teacher


def is_dagger_ppo_checkpoint(loaded: dict) -> bool:
    """Whether a loaded checkpoint was written by MixingDAggerPPO (an actor and a teacher)."""
    return "actor_state_dict" in loaded and "teacher_state_dict" in loaded


def _agent_cfg(task: str, checkpoint: str) -> dict:
    params = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "params", "agent.json")
    if os.path.isfile(params):
        with open(params) as f:
            return json.load(f)
    return dagger_ppo_train_cfg(task)


def load_models(task: str, checkpoint: str, loaded: dict, device: str, env: Any) -> dict[str, torch.nn.Module]:
    """Return ``{"student": actor, "teacher": teacher}`` of a MixingDAggerPPO checkpoint (configs from its run)."""
    from dagmix.cli_models import _build_model

    cfg = _agent_cfg(task, checkpoint)
    obs = env.get_observations()
    groups = {"actor": list(cfg["obs_groups"]["actor"]), "teacher": list(cfg["obs_groups"]["teacher"])}
    student = _build_model(cfg["actor"], obs, groups, "actor", env.num_actions)
    student.load_state_dict(loaded["actor_state_dict"])
    teacher = _build_model(cfg["teacher"], obs, groups, "teacher", env.num_actions)
    teacher.load_state_dict(loaded["teacher_state_dict"])
    return {"student": student.to(device), "teacher": teacher.to(device)}


def export(task: str, checkpoint: str, loaded: dict, out: str, env: Any) -> None:
    """Export the actor of a MixingDAggerPPO checkpoint as ONNX and TorchScript (through rsl_rl's runner).

    ``env``: a one-env instance of the task, with the env overrides the checkpoint was trained with.
    """
    from rsl_rl.runners import DistillationRunner

    student = load_models(task, checkpoint, loaded, "cpu", env)["student"]
    cfg = distill_train_cfg(task)
    cfg["algorithm"] = {"class_name": "Distillation", "gradient_length": cfg["num_steps_per_env"]}
    cfg["student"] = copy.deepcopy(_agent_cfg(task, checkpoint)["actor"])
    with contextlib.redirect_stdout(io.StringIO()):
        runner = DistillationRunner(env, cfg, None, "cpu")
    runner.alg.get_policy().load_state_dict(student.state_dict())
    runner.export_policy_to_onnx(out, "policy.onnx")
    runner.export_policy_to_jit(out, "policy.pt")


def cmd_distill_dagger_ppo(args: argparse.Namespace) -> int:
    """Train the student with MixingDAggerPPO; evaluate it alone as it trains; print the final table."""
    from rsl_rl.runners import OnPolicyRunner

    from dagmix import cli, cli_models
    from dagmix.envs.evaluation import evaluate_policy

    cfg, env_over = dagger_ppo_train_cfg(args.task), {}
    mixing = cfg["algorithm"]["mixing"]
    if args.schedule is not None:
        mixing = cfg["algorithm"]["mixing"] = {"schedule": args.schedule}
    if args.phase1_iterations is not None:
        mixing["phase1_iterations"] = args.phase1_iterations
    if args.init_student is not None:
        cfg["algorithm"]["init_student"] = os.path.abspath(args.init_student)
    cli._apply_common(args, cfg, env_over)
    env = cli_models._make_env(args.task, cli.cfg_num_envs(args), args.device, cfg["seed"], env_over)
    if args.resume:
        checkpoint, loaded = cli.find_checkpoint(
            args.log_root, cfg["experiment_name"], args.load_run, args.load_checkpoint, args.device, args.unsafe_load
        )
        if "teacher_state_dict" not in loaded or "actor_state_dict" not in loaded:
            raise SystemExit(
                f"dagmix: --resume found {checkpoint}, which is not a MixingDAggerPPO checkpoint (it needs both "
                "actor_state_dict and teacher_state_dict). Pick the run with --load_run."
            )
    else:
        try:
            checkpoint = args.checkpoint or shipped_teacher(args.task)
        except ValueError as e:
            raise SystemExit(f"dagmix: {e}") from None
        loaded = cli_models._load_file(checkpoint, args.device, args.unsafe_load)
    log_dir = cli._log_dir(args.log_root, cfg["experiment_name"], cfg["run_name"])
    with cli._release_if_unused(log_dir):
        params = copy.deepcopy(cfg)  # as given: rsl-rl-lib 5.4 pops class_name from the config it is given
        actor_cfg = copy.deepcopy(cfg["actor"])
        torch.manual_seed(cfg["seed"])
        try:
            runner = OnPolicyRunner(env, cfg, log_dir, args.device)
            print(f"[dagmix] loading {'run' if args.resume else 'teacher'} checkpoint {checkpoint}")
            # the runner's load, on a dict read with weights_only=True (the stock runner would unpickle fully)
            if runner.alg.load(loaded, None, True):
                runner.current_learning_iteration = loaded["iter"]
        except ValueError as e:
            raise SystemExit(f"dagmix: {e}") from e
        cli._write_params(log_dir, params, env_over, args.task)  # the run folder appears only once the run can start
        alg = runner.alg
        print(
            f"[dagmix] MixingDAggerPPO: mixing {alg.beta_schedule.describe()}, "
            f"granularity={alg.mixing_cfg.granularity}; "
            f"imitation_coef {alg.imitation_coef.describe()}; ppo_coef {alg.ppo_coef.describe()}; "
            f"imitation_loss {alg.imitation_loss}"
        )

        best: dict[str, Any] = {"return": -float("inf"), "state": None, "iter": None}
        if args.eval_episodes > 0 and args.eval_interval > 0:
            eval_env = cli_models._make_env(args.task, args.eval_episodes, args.device, cfg["seed"] + 10_000, env_over)
            last_it = runner.current_learning_iteration + cfg["max_iterations"] - 1

            def keep_state(it: int) -> None:  # the best student, evaluated again at the end
                best["state"] = copy.deepcopy(alg.get_policy().state_dict())

            evaluate = cli_models.periodic_eval(
                alg, eval_env, args.eval_episodes, args.eval_interval, last_it, log_dir, best, keep_state
            )

            alg.iteration_callbacks.append(evaluate)
        t0 = time.time()
        runner.learn(cfg["max_iterations"])
        print(f"[dagmix] MixingDAggerPPO took {time.time() - t0:.0f} s; checkpoints in {log_dir}")
        if args.final_eval_episodes > 0:
            n = args.final_eval_episodes
            final_env = cli_models._make_env(args.task, n, args.device, cfg["seed"] + 20_000, env_over)
            rows = {"student": evaluate_policy(final_env, alg.get_policy(), n)}
            if best["state"] is not None:
                model = cli_models._build_model(
                    actor_cfg, final_env.get_observations(), cfg["obs_groups"], "actor", env.num_actions
                )
                model.load_state_dict(best["state"])
                rows[f"best@{best['iter']}"] = evaluate_policy(final_env, model, n)
            rows["teacher"] = evaluate_policy(final_env, alg.teacher, n)
            print(
                "[dagmix] final evaluation on fresh episodes: the last student, the best by periodic eval, the teacher"
            )
            print(cli_models._format_table(rows))
            for name, res in rows.items():
                if name != "teacher":
                    print(f"[dagmix] {name} / teacher return: {res.return_mean / rows['teacher'].return_mean:.3f}")
        return 0
