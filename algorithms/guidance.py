"""The teacher-guided recipe of MixingDAggerPPO: per-state imitation weights (ADVISOR) and the critic warm-up.

- :class:`AdvisorHead`: an auxiliary copy of the actor trained by imitation only. Per visited state, how well it
  matches the teacher says whether the student's observations suffice to copy the teacher there (ADVISOR, Weihs et
  al., NeurIPS 2021): ``w(s) = exp(-alpha * d(s))``, ``d(s)`` the squared distance between the head's mean action
  and the teacher's label, averaged over the action dimensions. The actor imitates with weight ``max(floor, w)`` and
  follows PPO with weight ``1 - w``: imitation switches off where the student cannot copy, and only there.
- :class:`CriticWarmup`: the actor's PPO terms stay off until the critic explains the rollout's returns (explained
  variance at a threshold, or an iteration cap), then ramp in linearly (InterMimic, PIRLNav, mjlab's
  ``CriticWarmupPPO``): a distilled student is not pulled about by a critic that has not learnt yet.

Both read the rollout once per update; nothing here runs per env step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

from dagmix.algorithms.ema import is_normalizer


def _clone_hidden(hidden: Any) -> Any:
    """Return a detached copy of a recurrent hidden state (a tensor, a tuple of tensors, or None)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach().clone() for h in hidden)
    return hidden.detach().clone()


class AdvisorHead:
    """An auxiliary copy of the actor, trained by imitation only, that weighs imitation against PPO per state.

    It is built from the actor (same class and size; after ``init_student``, the same distilled weights) and shares
    the actor's normalisers (the observation's and any inside, as FilterRNNModel's rates'). Once per update,
    :meth:`fit` replays the rollout through it in time order
    (a recurrent head starts from its hidden state at the start of the rollout, as rsl_rl's ``Distillation``
    replays its student), takes gradient steps on the imitation loss every ``gradient_length`` steps, and returns the
    per-sample weights measured before each step's gradient.

    Attributes:
        model: The auxiliary model (its distribution's std is unused).
        optimizer: Adam over ``model``'s parameters (not the shared normaliser's statistics).
        alpha: ``w = exp(-alpha * d)``; at alpha 10, d of 0.01 gives w 0.90 and d of 0.5 gives 0.007.
    """

    def __init__(self, actor: nn.Module, alpha: float, learning_rate: float, gradient_length: int) -> None:
        """Build the head.

        Args:
            actor: The (raw) actor model, copied.
            alpha: Sharpness of the weight.
            learning_rate: Adam's learning rate.
            gradient_length: Truncated-backpropagation steps per gradient step of the replay.
        """
        self.model = copy.deepcopy(actor)
        # one set of normalisers, the actor's, updated by PPO's rollouts: the observation's and any the model keeps
        # inside (FilterRNNModel's rates); they hold no parameters, and the head's state_dict leaves them out
        self._shared = [n for n, m in actor.named_modules() if n == "obs_normalizer" or (n and is_normalizer(m))]
        for name in self._shared:
            parent, _, leaf = name.rpartition(".")
            setattr(self.model.get_submodule(parent) if parent else self.model, leaf, actor.get_submodule(name))
        self.model.requires_grad_(True)
        self.alpha = float(alpha)
        self.gradient_length = int(gradient_length)
        params = [p for n, p in self.model.named_parameters() if not self._is_shared(n)]
        self.optimizer = torch.optim.Adam(params, lr=learning_rate)
        self.recurrent = bool(getattr(self.model, "is_recurrent", False))
        self._start_hidden: Any = None

    def _is_shared(self, key: str) -> bool:
        """Whether a parameter or state key belongs to a normaliser shared with the actor."""
        return any(key.startswith(name + ".") for name in self._shared)

    def fit(
        self,
        observations: Any,
        labels: torch.Tensor,
        dones: torch.Tensor,
        reduce_gradients: Callable[[list[torch.Tensor]], None] | None = None,
        max_grad_norm: float | None = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replay the rollout, train the head on the teacher's labels, return the weights and the mean distance.

        Args:
            observations: The rollout's observations, a TensorDict of batch size (T, num_envs).
            labels: The teacher's actions, shape (T, num_envs, num_actions), on the env's device.
            dones: Shape (T, num_envs, 1): where an episode ended after the step.
            reduce_gradients: Averages the head's gradients over ranks (multi-GPU), or None.
            max_grad_norm: Gradient-norm clip of each step (None: no clip).

        Returns:
            The per-sample weights ``w``, shape (T, num_envs, 1), in [0, 1], and the mean distance d (a 0-d tensor),
            both on the device and detached.
        """
        model = self.model
        model.train()
        steps = labels.shape[0]
        if self.recurrent:
            model.reset(hidden_state=self._start_hidden)
            model.detach_hidden_state()
        distances = []
        loss: torch.Tensor | float = 0.0
        params = self.optimizer.param_groups[0]["params"]
        for t in range(steps):
            mean = model(observations[t])
            d = (mean - labels[t]).pow(2).mean(-1)
            distances.append(d.detach())
            loss = loss + d.mean()
            if (t + 1) % self.gradient_length == 0 or t == steps - 1:
                self.optimizer.zero_grad()
                (loss / min(self.gradient_length, steps)).backward()  # type: ignore[union-attr]
                if reduce_gradients is not None:
                    reduce_gradients([p.grad for p in params if p.grad is not None])
                if max_grad_norm:
                    nn.utils.clip_grad_norm_(params, max_grad_norm)
                self.optimizer.step()
                loss = 0.0
                if self.recurrent:
                    model.detach_hidden_state()
            if self.recurrent:
                done = dones[t].view(-1)
                model.reset(done)
                model.detach_hidden_state(done)
        if self.recurrent:
            self._start_hidden = _clone_hidden(model.get_hidden_state())  # the start of the next rollout
        distance = torch.stack(distances)
        return torch.exp(-self.alpha * distance).unsqueeze(-1), distance.mean()

    def state_dict(self) -> dict[str, Any]:
        """Return the head's weights and optimizer state (the normaliser is the actor's)."""
        weights = {k: v for k, v in self.model.state_dict().items() if not self._is_shared(k)}
        return {"model": weights, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; a resumed recurrent head starts from a zero hidden state."""
        self.model.load_state_dict(dict(state["model"]), strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self._start_hidden = None


def explained_variance_sums(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Return (sum r, sum r^2, sum e, sum e^2, count) of the returns r and the errors e = r - v, on the device.

    Sums, so that ranks can all-reduce them before :func:`explained_variance` (every rank then decides alike).
    """
    r = returns.flatten().float()
    e = (returns - values).flatten().float()
    count = torch.tensor(float(r.numel()), device=r.device)
    return torch.stack([r.sum(), r.pow(2).sum(), e.sum(), e.pow(2).sum(), count])


def explained_variance(sums: list[float]) -> float:
    """Return 1 - Var(r - v) / Var(r) from :func:`explained_variance_sums` (read on the host); 0 for constant r."""
    r_sum, r_sq, e_sum, e_sq, n = sums
    n = max(n, 1.0)
    var_r = r_sq / n - (r_sum / n) ** 2
    var_e = e_sq / n - (e_sum / n) ** 2
    return 0.0 if var_r <= 1e-12 else 1.0 - var_e / var_r


class CriticWarmup:
    """The factor on the actor's PPO terms: 0 until the critic has warmed up, then a linear ramp to 1.

    The warm-up ends at the first update whose rollout the critic explains with at least ``threshold`` of the
    returns' variance, or at iteration ``max_iterations`` (the runner's), whichever comes first; the factor then
    rises by ``1 / ramp_iterations`` per iteration. ``threshold`` None: no warm-up (factor 1 throughout).
    """

    def __init__(self, threshold: float | None, max_iterations: int, ramp_iterations: int) -> None:
        """Build the warm-up.

        Args:
            threshold: The explained variance that ends the warm-up, or None (no warm-up).
            max_iterations: The iteration at which it ends regardless.
            ramp_iterations: Iterations from 0 to full PPO after it.
        """
        self.threshold = threshold
        self.max_iterations = int(max_iterations)
        self.ramp_iterations = max(int(ramp_iterations), 1)
        self.done_at: int | None = None
        """The iteration at which the warm-up ended (None: still warming up)."""

    @property
    def active(self) -> bool:
        """Whether there is a warm-up at all."""
        return self.threshold is not None

    def factor(self, iteration: int, explained: float | None) -> float:
        """Return the PPO factor at ``iteration`` given the rollout's explained variance (None: not measured)."""
        if self.threshold is None:
            return 1.0
        if self.done_at is None:
            reached = explained is not None and explained >= self.threshold
            if reached or iteration >= self.max_iterations:
                self.done_at = iteration
            else:
                return 0.0
        return min(1.0, (iteration - self.done_at + 1) / self.ramp_iterations)

    def state_dict(self) -> dict[str, Any]:
        """Return the warm-up's state (the iteration at which it ended)."""
        return {"done_at": self.done_at}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        done_at = state.get("done_at")
        self.done_at = None if done_at is None else int(done_at)


def set_action_std(actor: nn.Module, std: float) -> None:
    """Set the actor's Gaussian action std to ``std`` for every action (scalar or log parameterisation).

    Raises:
        ValueError: the actor has no state-independent std parameter to set.
    """
    dist = getattr(actor, "distribution", None)
    with torch.no_grad():
        if dist is not None and hasattr(dist, "std_param"):
            dist.std_param.fill_(std)
        elif dist is not None and hasattr(dist, "log_std_param"):
            dist.log_std_param.fill_(float(torch.log(torch.tensor(std))))
        else:
            raise ValueError(
                f"init_student_std={std} needs an actor with a state-independent Gaussian std (rsl_rl's "
                "GaussianDistribution); set init_student_std=None for this actor."
            )


class TeacherGuidance:
    """The recipe's state in :class:`~dagmix.algorithms.MixingDAggerPPO`: advisor head, warm-up, learning-rate floor.

    ``active`` False (``imitation_coef`` 0 at every iteration): no head, no warm-up, rsl_rl's own learning-rate floor
    (1e-5), so the algorithm is stock PPO.
    """

    def __init__(self, options: Any, actor: nn.Module, learning_rate: float, active: bool) -> None:
        """Build the pieces ``options`` (:class:`~dagmix.mixing.dagger_ppo_schema.DAggerPPOOptions`) ask for.

        Args:
            options: The validated algorithm options.
            actor: The raw actor (after ``init_student``: the head copies the distilled weights).
            learning_rate: The configured learning rate (the adaptive schedule's floor unless ``min_learning_rate``).
            active: Whether imitation is on at some iteration.
        """
        self.active = active
        self.imitation_floor = options.imitation_floor
        self.init_critic_from_teacher = options.init_critic_from_teacher
        self.advisor: AdvisorHead | None = None
        if active and options.imitation_balance == "advisor":
            self.advisor = AdvisorHead(actor, options.advisor_alpha, options.advisor_learning_rate, gradient_length=12)
        threshold = options.critic_warmup if active and options.init_student is not None else None
        self.warmup = CriticWarmup(threshold, options.critic_warmup_max_iterations, options.ppo_ramp_iterations)
        self.lr_floor = 1e-5  # rsl_rl's own floor of the KL-adaptive schedule
        if active:
            self.lr_floor = learning_rate if options.min_learning_rate is None else options.min_learning_rate

    def before_update(
        self,
        storage: Any,
        labels: torch.Tensor,
        iteration: int,
        all_reduce: Callable[[torch.Tensor], None] | None,
        max_grad_norm: float | None,
        world_size: int = 1,
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Fit the head on the rollout and measure the critic, before the PPO epochs; one host read.

        Args:
            storage: rsl_rl's rollout storage after ``compute_returns`` (values, returns, dones, observations).
            labels: The teacher's labels, shape (T, num_envs, num_actions).
            iteration: The runner's iteration of this rollout.
            all_reduce: Sums a tensor over ranks in place (multi-GPU), or None.
            max_grad_norm: The head's gradient clip.
            world_size: The number of ranks ``all_reduce`` sums over.

        Returns:
            The per-sample advisor weights (T, num_envs, 1) or None, and the scalars to log (explained variance,
            the PPO warm-up factor, the mean weight and head distance).
        """
        if not self.active:
            return None, {}
        parts = [explained_variance_sums(storage.values, storage.returns)]
        weights = None
        if self.advisor is not None:
            reduce = None if all_reduce is None else _averaging(all_reduce, world_size)
            weights, distance = self.advisor.fit(storage.observations, labels, storage.dones, reduce, max_grad_norm)
            parts.append(torch.stack([weights.mean(), distance]))
        sums = torch.cat(parts)
        if all_reduce is not None:
            all_reduce(sums)  # the head's means then sum over ranks: divided below by the count of ranks
        values = sums.tolist()
        ranks = 1.0 if all_reduce is None else float(world_size)
        explained = explained_variance(values[:5])
        scalars = {"explained_variance": explained}
        if self.warmup.active:
            scalars["ppo_warmup"] = self.warmup.factor(iteration, explained)
        if self.advisor is not None:
            scalars["imitation_weight"], scalars["advisor_distance"] = values[5] / ranks, values[6] / ranks
        return weights, scalars

    def load_teacher_critic(self, critic: nn.Module, state: Mapping[str, torch.Tensor] | None) -> bool:
        """Load the teacher's PPO critic into ``critic`` where ``init_critic_from_teacher`` asks and it fits.

        Returns whether it was loaded. Raises ValueError where it is required (True) and does not fit.
        """
        if self.init_critic_from_teacher is False:
            return False
        ours = critic.state_dict()
        misfit = "the checkpoint has no critic_state_dict" if state is None else None
        if state is not None and set(state) != set(ours):
            misfit = f"its parameters differ ({sorted(set(state) ^ set(ours))[:4]})"
        elif state is not None:
            bad = [k for k in ours if tuple(state[k].shape) != tuple(ours[k].shape)]
            if bad:
                misfit = f"{bad[0]} is {tuple(state[bad[0]].shape)} there, {tuple(ours[bad[0]].shape)} here"
        if misfit is None:
            critic.load_state_dict(dict(state))  # type: ignore[arg-type]
            return True
        if self.init_critic_from_teacher is True:
            raise ValueError(
                f"init_critic_from_teacher=True, but the teacher's critic does not fit this critic: {misfit}. Give "
                "the critic the teacher critic's observation groups and sizes, or set init_critic_from_teacher=None."
            )
        return False

    def state_dict(self) -> dict[str, Any]:
        """Return the warm-up's and the head's state (for ``checkpoint["dagmix"]["guidance"]``)."""
        state: dict[str, Any] = {"warmup": self.warmup.state_dict()}
        if self.advisor is not None:
            state["advisor"] = self.advisor.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (a checkpoint from before the recipe has none: the pieces start fresh)."""
        if "warmup" in state:
            self.warmup.load_state_dict(state["warmup"])
        if self.advisor is not None and "advisor" in state:
            self.advisor.load_state_dict(state["advisor"])


def _averaging(all_reduce: Callable[[torch.Tensor], None], world_size: int) -> Callable[[list[torch.Tensor]], None]:
    """Return a function that averages gradients over ``world_size`` ranks (one all-reduce of their concatenation)."""

    def reduce(grads: list[torch.Tensor]) -> None:
        flat = torch.cat([g.reshape(-1) for g in grads])
        all_reduce(flat)
        flat /= world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    return reduce
