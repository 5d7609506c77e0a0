"""Test helpers: train configs, the toy env, runners and rollouts (CPU, seconds)."""

from __future__ import annotations

import torch

from dagmix.algorithms import compat
from dagmix.envs.toy import PointMassEnv


def make_train_cfg(
    algorithm: dict | None = None,
    student: str = "mlp",
    steps: int = 8,
    max_iterations: int = 6,
    seed: int = 1,
    save_interval: int = 1000,
) -> dict:
    """Return a distillation train config using MixingDistillation, in the installed rsl-rl's model format."""
    cfg: dict = {
        "num_steps_per_env": steps,
        "max_iterations": max_iterations,
        "save_interval": save_interval,
        "seed": seed,
        "algorithm": {
            "class_name": "dagmix.algorithms:MixingDistillation",
            "num_learning_epochs": 1,
            "gradient_length": steps,
            "learning_rate": 1e-3,
            "max_grad_norm": 1.0,
            **(algorithm or {}),
        },
        "logger": "tensorboard",
    }
    if compat.STUDENT_TEACHER_POLICY:  # rsl-rl 3.x: one StudentTeacher module
        policy: dict = {
            "class_name": "StudentTeacher",
            "student_hidden_dims": [32, 32],
            "teacher_hidden_dims": [32, 32],
            "activation": "elu",
            "init_noise_std": 0.1,
            "student_obs_normalization": True,
            "teacher_obs_normalization": False,
        }
        if student in ("gru", "lstm"):
            policy.update(class_name="StudentTeacherRecurrent", rnn_type=student, rnn_hidden_dim=16, rnn_num_layers=1)
        return {**cfg, "obs_groups": {"policy": ["policy"], "teacher": ["teacher"]}, "policy": policy}
    student_cfg: dict = {
        "class_name": "MLPModel",
        "hidden_dims": [32, 32],
        "activation": "elu",
        "obs_normalization": True,
    }
    if compat.NEW_DISTRIBUTION_CFG:
        student_cfg["distribution_cfg"] = {"class_name": "GaussianDistribution", "init_std": 0.1}
    else:  # rsl-rl 4.x
        student_cfg.update(stochastic=True, init_noise_std=0.1)
    if student in ("gru", "lstm"):
        student_cfg.update(class_name="RNNModel", rnn_type=student, rnn_hidden_dim=16, rnn_num_layers=1)
    return {
        **cfg,
        "obs_groups": {"student": ["policy"], "teacher": ["teacher"]},
        "student": student_cfg,
        "teacher": {"class_name": "MLPModel", "hidden_dims": [32, 32], "activation": "elu", "obs_normalization": False},
    }


def teacher_checkpoint(path, env) -> str:
    """Save a PPO-style checkpoint (random weights) for the teacher of ``make_train_cfg``; return its path."""
    torch.manual_seed(123)
    if compat.STUDENT_TEACHER_POLICY:  # rsl-rl 3.x: an ActorCritic state dict under model_state_dict
        from rsl_rl.networks import MLP

        obs = env.get_observations()
        actor = MLP(obs["teacher"].shape[-1], env.num_actions, [32, 32], "elu")
        state = {f"actor.{k}": v for k, v in actor.state_dict().items()}
        torch.save({"model_state_dict": state, "iter": 0, "infos": None}, path)
        return str(path)
    from rsl_rl.models import MLPModel

    tcfg = dict(make_train_cfg()["teacher"])
    tcfg.pop("class_name")
    model = MLPModel(env.get_observations(), {"teacher": ["teacher"]}, "teacher", env.num_actions, **tcfg)
    torch.save({"actor_state_dict": model.state_dict(), "iter": 0, "infos": None}, path)
    return str(path)


def make_env(num_envs: int = 16, seed: int = 0, max_episode_length: int = 5) -> PointMassEnv:
    return PointMassEnv(num_envs=num_envs, seed=seed, max_episode_length=max_episode_length)


def make_runner(
    tmp_path,
    teacher_path: str | None,
    algorithm: dict | None = None,
    runner: str = "mixing",
    student: str = "mlp",
    num_envs: int = 16,
    log: bool = False,
    **cfg_kwargs,
):
    """Build a runner (``mixing``: MixingDistillationRunner, ``stock``: rsl_rl DistillationRunner) on the toy env."""
    from rsl_rl.runners import DistillationRunner

    from dagmix.algorithms import MixingDistillationRunner

    cls = MixingDistillationRunner if runner == "mixing" else DistillationRunner
    cfg = make_train_cfg(algorithm, student=student, **cfg_kwargs)
    env = make_env(num_envs=num_envs, seed=cfg["seed"])
    log = log or compat.STUDENT_TEACHER_POLICY  # rsl-rl 3.x runners cannot learn() without a log_dir
    r = cls(env, cfg, str(tmp_path / "logs") if log else None, "cpu")
    if teacher_path is not None:
        r.load(teacher_path)
    return r


def rollout(alg, env, steps: int) -> None:
    """Collect ``steps`` transitions the way rsl_rl's runner does."""
    obs = env.get_observations()
    with torch.inference_mode():
        for _ in range(steps):
            actions = alg.act(obs)
            obs, rewards, dones, extras = env.step(actions)
            alg.process_env_step(obs, rewards, dones, extras)


def check_recurrent_model_paths_agree(model, steps: list, hidden_width: int) -> None:
    """Assert that a one-GRU-state model gives the same latent step by step (the rollout) as on PPO's padded
    trajectories, and the same actions as its TorchScript and ONNX exports; ``steps``: five TensorDicts of 6 envs
    (``policy`` and ``teacher``), ``hidden_width``: the model's whole hidden state. Call it in eval mode."""
    from rsl_rl.utils import split_and_pad_trajectories
    from tensordict import TensorDict

    dones = torch.zeros(5, 6)
    dones[2, :3] = 1.0  # envs 0-2 end an episode after step 2
    with torch.no_grad():  # step by step, as the rollout: the model keeps its state
        outs = []
        for t, obs in enumerate(steps):
            outs.append(model.get_latent(obs))
            model.reset(dones[t])
        stacked = TensorDict({k: torch.stack([o[k] for o in steps]) for k in ("policy", "teacher")}, batch_size=[5, 6])
        padded, masks = split_and_pad_trajectories(stacked, dones.unsqueeze(-1))
        batch = model.get_latent(padded, masks, torch.zeros(1, padded.shape[1], hidden_width))  # PPO's batches
    torch.testing.assert_close(batch, torch.stack(outs))

    model.reset()
    exported = model.as_jit()
    onnx = model.as_onnx()
    h = torch.zeros(1, 1, hidden_width)
    with torch.no_grad():
        for obs in steps[:3]:
            expected = model(obs)[:1]
            torch.testing.assert_close(exported(obs["policy"][:1]), expected)
            actions, h = onnx(obs["policy"][:1], h)
            torch.testing.assert_close(actions, expected)
        model.reset()
    assert torch.jit.script(model.as_jit()) is not None  # rsl_rl's runner scripts the export
