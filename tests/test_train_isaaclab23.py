"""The Isaac Lab 2.3 train script's flags and config updates (Isaac Sim itself is not installable here)."""

from __future__ import annotations

from types import SimpleNamespace

from dagmix.integrations import train_isaaclab23 as script


def _parser():
    return script.build_parser(lambda p: p.add_argument("--headless", action="store_true"))


def test_isaac_lab_23_flags_are_all_accepted():
    args, hydra = _parser().parse_known_args(
        "--task T --num_envs 64 --seed 3 --max_iterations 9 --video --video_length 5 --video_interval 7 "
        "--distributed --export_io_descriptors --experiment_name E --run_name R --resume --load_run L "
        "--checkpoint model_9.pt --logger wandb --log_project_name P --headless "
        "--teacher_checkpoint /t.pt agent.algorithm.phase1_iterations=50".split()
    )
    assert hydra == ["agent.algorithm.phase1_iterations=50"]
    assert (args.task, args.num_envs, args.seed, args.max_iterations) == ("T", 64, 3, 9)
    assert args.video and args.distributed and args.export_io_descriptors and args.resume and args.headless
    assert (args.load_run, args.checkpoint, args.teacher_checkpoint) == ("L", "model_9.pt", "/t.pt")
    assert args.agent == "rsl_rl_cfg_entry_point"


def test_rsl_rl_flags_update_the_agent_config_like_isaac_lab():
    agent = SimpleNamespace(seed=0, resume=False, load_run=".*", load_checkpoint="model_.*.pt", experiment_name="x")
    agent.__dict__.update(run_name="", logger="tensorboard", wandb_project="", neptune_project="")
    args, _ = _parser().parse_known_args("--seed 5 --load_run L --logger wandb --log_project_name P".split())
    script.update_agent_cfg(agent, args)
    assert (agent.seed, agent.load_run, agent.load_checkpoint, agent.logger) == (5, "L", "model_.*.pt", "wandb")
    assert agent.wandb_project == agent.neptune_project == "P" and agent.resume is False
