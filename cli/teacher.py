"""``dagmix train-teacher``: the privileged teacher, trained with rsl_rl's PPO (OnPolicyRunner)."""

from __future__ import annotations

import argparse
import copy
import time

import torch

from dagmix.cli.models import format_table, make_env
from dagmix.cli.runs import apply_run_flags, num_envs, release_if_unused, reserve_log_dir, write_params
from dagmix.envs.task_configs import teacher_train_cfg


def cmd_train_teacher(args: argparse.Namespace) -> int:
    """Train the privileged teacher with rsl_rl PPO (OnPolicyRunner)."""
    from rsl_rl.runners import OnPolicyRunner

    from dagmix.envs.evaluation import evaluate_policy

    cfg, env_over = teacher_train_cfg(args.task), {}
    apply_run_flags(args, cfg, env_over)
    env = make_env(args.task, num_envs(args), args.device, cfg["seed"], env_over)
    log_dir = reserve_log_dir(args.log_root, cfg["experiment_name"], cfg["run_name"])
    with release_if_unused(log_dir):
        params = copy.deepcopy(cfg)  # as given: rsl-rl 5.4 pops keys (class_name) of the config it is built from
        torch.manual_seed(cfg["seed"])
        try:
            runner = OnPolicyRunner(env, cfg, log_dir, args.device)
        except (ValueError, TypeError) as e:
            raise SystemExit(f"dagmix: {e}") from e
        write_params(log_dir, params, env_over, args.task)  # the run folder appears only once the run can start
        t0 = time.time()
        runner.learn(cfg["max_iterations"])
        print(f"[dagmix] teacher trained in {time.time() - t0:.0f} s; checkpoints in {log_dir}")
        if args.eval_episodes > 0:
            eval_env = make_env(args.task, args.eval_episodes, args.device, cfg["seed"] + 10_000, env_over)
            res = evaluate_policy(eval_env, runner.get_inference_policy(args.device), args.eval_episodes)
            print(format_table({"teacher": res}))
        return 0
