"""The update step of MixingDAggerPPO: rsl_rl's PPO update (5.4.2 / 5.5.x) with the imitation term and masking.

It follows ``rsl_rl.algorithms.PPO.update`` line for line; the differences are the ``ppo_coef`` factor on the
actor's terms, the masked surrogate where the teacher drove, and the imitation term. With ``ppo_coef`` 1,
``imitation_coef`` 0 and no teacher-driven sample it performs exactly the same floating-point operations as
rsl_rl's PPO (tests/test_dagger_ppo.py compares the weights bit for bit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from rsl_rl.utils import unpad_trajectories

from dagmix.algorithms import _compat

if TYPE_CHECKING:
    from dagmix.algorithms.dagger_ppo import MixingDAggerPPO


def _sample_field(alg: MixingDAggerPPO, batch: object, key: str) -> torch.Tensor:
    """Return a per-sample field stored in the observations, shaped like the batch's actions."""
    value = batch.observations[key]  # type: ignore[attr-defined]
    masks = batch.masks  # type: ignore[attr-defined]
    return unpad_trajectories(value, masks) if masks is not None else value


def imitation_loss(alg: MixingDAggerPPO, labels: torch.Tensor) -> torch.Tensor:
    """Return the imitation loss of the actor's current output distribution against the teacher's ``labels``."""
    if alg.imitation_loss == "gaussian_nll":
        return -alg.actor.get_output_log_prob(labels).mean()
    mean = alg.actor.output_mean
    if alg.imitation_loss == "huber":
        return nn.functional.huber_loss(mean, labels)
    return nn.functional.mse_loss(mean, labels)


def _adapt_learning_rate(alg: MixingDAggerPPO, batch: object, distribution_params: tuple) -> None:
    """rsl_rl's KL-adaptive learning rate (unchanged)."""
    with torch.inference_mode():
        kl = alg.actor.get_kl_divergence(batch.old_distribution_params, distribution_params)  # type: ignore
        kl_mean = torch.mean(kl)
        if alg.is_multi_gpu:
            torch.distributed.all_reduce(kl_mean, op=torch.distributed.ReduceOp.SUM)
            kl_mean /= alg.gpu_world_size
        if alg.gpu_global_rank == 0:
            if kl_mean > alg.desired_kl * 2.0:
                alg.learning_rate = max(1e-5, alg.learning_rate / 1.5)
            elif kl_mean < alg.desired_kl / 2.0 and kl_mean > 0.0:
                alg.learning_rate = min(1e-2, alg.learning_rate * 1.5)
        if alg.is_multi_gpu:
            lr_tensor = torch.tensor(alg.learning_rate, device=alg.device)
            torch.distributed.broadcast(lr_tensor, src=0)
            alg.learning_rate = lr_tensor.item()
        for param_group in alg.optimizer.param_groups:
            param_group["lr"] = alg.learning_rate


def ppo_imitation_update(
    alg: MixingDAggerPPO, ppo_coef: float, imitation_coef: float, mixed: bool
) -> tuple[dict[str, float], torch.Tensor]:
    """Run the PPO epochs with the imitation term; return rsl_rl's loss dict and on-device statistics.

    Args:
        alg: The algorithm (its storage holds the rollout, labels and who-drove flags).
        ppo_coef: Factor of the actor's PPO terms (surrogate and entropy bonus) this iteration; 0 drops them.
        imitation_coef: Factor of the imitation loss this iteration; 0 drops it from the gradient.
        mixed: Whether the teacher may have driven this rollout (beta > 0); then teacher-driven samples are
            masked out of the surrogate.

    Returns:
        The loss dict (``value``, ``surrogate``, ``entropy``, ``rnd`` if used) and a tensor on the device:
        (imitation loss sum over mini-batches, mini-batches, teacher-driven samples, samples).
    """
    from dagmix.algorithms.dagger_ppo import DRIVEN_KEY, LABEL_KEY

    mean_value_loss = 0.0
    mean_surrogate_loss = 0.0
    mean_entropy = 0.0
    mean_rnd_loss = 0.0 if alg.rnd else None
    imitation_sum = torch.zeros((), device=alg.device)
    if alg.actor.is_recurrent or alg.critic.is_recurrent:
        generator = alg.storage.recurrent_mini_batch_generator(alg.num_mini_batches, alg.num_learning_epochs)
    else:
        generator = alg.storage.mini_batch_generator(alg.num_mini_batches, alg.num_learning_epochs)

    for batch in generator:
        original_batch_size = batch.observations.batch_size[0]
        if alg.normalize_advantage_per_mini_batch:
            with torch.no_grad():
                batch.advantages = (batch.advantages - batch.advantages.mean()) / (batch.advantages.std() + 1e-8)
        with torch.amp.autocast(
            device_type=torch.device(alg.device).type, enabled=alg._mixed_precision, dtype=torch.bfloat16
        ):
            alg.actor(
                batch.observations, masks=batch.masks, hidden_state=batch.hidden_states[0], stochastic_output=True
            )
            actions_log_prob = alg.actor.get_output_log_prob(batch.actions)
            values = alg.critic(batch.observations, masks=batch.masks, hidden_state=batch.hidden_states[1])
            distribution_params = tuple(p[:original_batch_size] for p in alg.actor.output_distribution_params)
            entropy = alg.actor.output_entropy[:original_batch_size]
            if alg.desired_kl is not None and alg.schedule == "adaptive":
                _adapt_learning_rate(alg, batch, distribution_params)

            log_ratio = actions_log_prob - torch.squeeze(batch.old_actions_log_prob)
            if mixed:  # teacher-driven samples leave the surrogate (ratio 1 there, so no overflow, zero gradient)
                student_driven = _sample_field(alg, batch, DRIVEN_KEY).squeeze(-1) < 0.5
                log_ratio = torch.where(student_driven, log_ratio, torch.zeros_like(log_ratio))
            ratio = torch.exp(log_ratio)
            surrogate = -torch.squeeze(batch.advantages) * ratio
            surrogate_clipped = -torch.squeeze(batch.advantages) * torch.clamp(
                ratio, 1.0 - alg.clip_param, 1.0 + alg.clip_param
            )
            per_sample = torch.max(surrogate, surrogate_clipped)
            if mixed:
                kept = student_driven.to(per_sample.dtype)
                surrogate_loss = (per_sample * kept).sum() / kept.sum().clamp_min(1.0)
            else:
                surrogate_loss = per_sample.mean()

            if alg.use_clipped_value_loss:
                value_clipped = batch.values + (values - batch.values).clamp(-alg.clip_param, alg.clip_param)
                value_losses = (values - batch.returns).pow(2)
                value_losses_clipped = (value_clipped - batch.returns).pow(2)
                value_loss = torch.max(value_losses, value_losses_clipped).mean()
            else:
                value_loss = (batch.returns - values).pow(2).mean()

            if ppo_coef > 0.0:
                loss = (
                    ppo_coef * surrogate_loss
                    + alg.value_loss_coef * value_loss
                    - ppo_coef * alg.entropy_coef * entropy.mean()
                )
            else:
                loss = alg.value_loss_coef * value_loss
            labels = _sample_field(alg, batch, LABEL_KEY)
            if imitation_coef > 0.0:
                imitation = imitation_loss(alg, labels)
                loss = loss + imitation_coef * imitation
            else:
                with torch.no_grad():
                    imitation = imitation_loss(alg, labels)
            imitation_sum += imitation.detach().float()

            rnd_loss = alg.rnd.compute_loss(batch.observations[:original_batch_size]) if alg.rnd else None

        alg.optimizer.zero_grad()
        loss.backward()
        if alg.rnd:
            alg.rnd.optimizer.zero_grad()
            rnd_loss.backward()
        if alg.is_multi_gpu:
            alg.reduce_parameters()
        nn.utils.clip_grad_norm_(alg.actor.parameters(), alg.max_grad_norm)
        nn.utils.clip_grad_norm_(alg.critic.parameters(), alg.max_grad_norm)
        alg.optimizer.step()
        if alg.rnd:
            alg.rnd.optimizer.step()

        mean_value_loss += value_loss.item()
        mean_surrogate_loss += surrogate_loss.item()
        mean_entropy += entropy.mean().item()
        if mean_rnd_loss is not None:
            mean_rnd_loss += rnd_loss.item()

    if _compat.NORMALIZER_UPDATED_IN_UPDATE:  # 5.5: once per update; 5.4: on every process_env_step
        obs = alg.storage.observations.flatten(0, 1)
        alg.actor.update_normalization(obs)
        alg.critic.update_normalization(obs)
        if alg.rnd:
            alg.rnd.update_normalization(obs)

    num_updates = alg.num_learning_epochs * alg.num_mini_batches
    loss_dict = {
        "value": mean_value_loss / num_updates,
        "surrogate": mean_surrogate_loss / num_updates,
        "entropy": mean_entropy / num_updates,
    }
    if mean_rnd_loss is not None:
        loss_dict["rnd"] = mean_rnd_loss / num_updates
    driven = alg.storage.observations[DRIVEN_KEY]
    stats = torch.stack(
        [
            imitation_sum,
            torch.tensor(float(num_updates), device=alg.device),
            driven.sum().float(),
            torch.tensor(float(driven.numel()), device=alg.device),
        ]
    )
    alg.storage.clear()
    return loss_dict, stats
