"""rsl_rl models: MultiTeacherModel (several experts as one teacher), EstimatorRNNModel (a student with an estimator).

MultiTeacherModel: several experts as one rsl_rl teacher model; each env is labelled by its own expert.

Name it as the ``teacher`` section's ``class_name`` (``"dagmix.models:MultiTeacherModel"``) for MixingDistillation
or MixingDAggerPPO under rsl_rl's stock runners (rsl-rl-lib 5.4.2 / 5.5.x model API); the config, the Isaac Lab and
mjlab forms and the errors are in docs/multi_teacher.md. Every expert runs on every env at every step (a recurrent
expert's hidden state therefore follows every env's trajectory and is ready when the selector hands it an env); one
``gather`` on the device picks each env's own expert's action, so no step reads the selector to the host.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from rsl_rl.models import MLPModel, RNNModel
from rsl_rl.models.rnn_model import _TorchGRUModel
from rsl_rl.modules import EmpiricalNormalization
from rsl_rl.utils import resolve_callable, unpad_trajectories
from tensordict import TensorDict

from dagmix.mixing.estimator_schema import ESTIMATOR_KEYS, ESTIMATOR_MODES, FILTER_KEYS
from dagmix.mixing.multi_teacher_schema import validate_multi_teacher

__all__ = ["EstimatorRNNModel", "FilterRNNModel", "MultiTeacherModel", "SelectorError"]


class SelectorError(ValueError):
    """A selector value that names no expert: out of range, fractional or non-finite."""


def _expert_state(path: str, k: int) -> dict[str, torch.Tensor]:
    """Return the actor state dict of the PPO checkpoint at ``path`` (expert ``k``), loaded with weights_only."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ValueError(f"checkpoints[{k}]={path!r} (expert {k}): no such file.") from e
    if not isinstance(loaded, dict) or "actor_state_dict" not in loaded:
        keys = sorted(loaded) if isinstance(loaded, dict) else type(loaded).__name__
        raise ValueError(
            f"checkpoints[{k}]={path!r} (expert {k}) is not a PPO checkpoint of rsl-rl-lib 4.x/5.x: it has no "
            f"'actor_state_dict' (keys: {keys})."
        )
    return loaded["actor_state_dict"]


class MultiTeacherModel(nn.Module):
    """K frozen experts behind rsl_rl's model interface; env ``i`` gets expert ``selector[i]``'s output.

    Expert ``k`` is built from ``teachers[k]`` with the observation set ``<obs_set>_<k>`` (``teacher_0``,
    ``teacher_1``, ...) if ``obs_groups`` has it, else ``<obs_set>`` (``teacher``): experts may read different
    observation groups. The selector group is read on the device at every step; a value that names no expert is
    counted there (and replaced by expert 0 for that step's gather) and raised by :meth:`check_selector`, which
    dagmix's algorithms call once per update, before any gradient step. The initial observation is checked at
    construction. The model runs on any number of envs (e.g. an evaluation env besides the training env).

    Attributes:
        experts: The expert models (``nn.ModuleList``), in selector order; their parameters do not require grad.
        num_experts: K.
        selector_group: The observation group holding each env's expert index.
        expert_obs_sets: The observation set each expert was built from.
        checkpoints_loaded: True when the experts' weights came from ``checkpoints`` at construction (dagmix's
            algorithms then count the teacher as loaded).
        expert_ids: Long tensor, shape (num_envs,), on the env's device: the expert of each env at the latest
            forward pass.
        is_recurrent: True if any expert is recurrent.
    """

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        teachers: Sequence[dict[str, Any]],
        selector_group: str,
        checkpoints: Sequence[str] | None = None,
        distribution_cfg: None = None,
    ) -> None:
        """Build (and with ``checkpoints``, load) the experts.

        Args:
            obs: The env's observations (a TensorDict with batch size (num_envs,)).
            obs_groups: rsl_rl's observation sets.
            obs_set: The set rsl_rl builds the teacher from (``teacher``).
            output_dim: The number of actions.
            teachers: One model config per expert (``class_name`` plus its keys).
            selector_group: The observation group with each env's expert index (values 0..K-1).
            checkpoints: One PPO checkpoint per expert (``actor_state_dict``), or None (loaded later).
            distribution_cfg: Must be None (Isaac Lab passes it for every model section): each expert's
                distribution is in its own config.
        """
        super().__init__()
        if distribution_cfg is not None:
            raise ValueError(
                f"distribution_cfg={distribution_cfg!r}: the multi-teacher has no distribution of its own; give each "
                "expert's in its teachers[k] config."
            )
        teachers, paths, selector_group = validate_multi_teacher(teachers, checkpoints, selector_group)
        if selector_group not in obs.keys():
            raise ValueError(
                f"selector_group={selector_group!r} is not an observation group of this env (groups: "
                f"{sorted(obs.keys())}); the env must provide each env's expert index there."
            )
        selector = obs[selector_group]
        num_envs = obs.batch_size[0]
        if tuple(selector.shape) not in ((num_envs,), (num_envs, 1)):
            raise ValueError(
                f"Observation group {selector_group!r} has shape {tuple(selector.shape)}; the selector must have "
                f"shape ({num_envs}, 1) (one expert index per env)."
            )
        self.selector_group = selector_group
        self.num_experts = len(teachers)
        self.expert_obs_sets: list[str] = []
        experts = []
        for k, cfg in enumerate(teachers):
            cfg = copy.deepcopy(cfg)
            cls = resolve_callable(cfg.pop("class_name"))
            own = f"{obs_set}_{k}"
            expert_set = own if own in obs_groups else obs_set
            self.expert_obs_sets.append(expert_set)
            experts.append(cls(obs, obs_groups, expert_set, output_dim, **cfg))
        self.experts = nn.ModuleList(experts)
        self.is_recurrent = any(getattr(e, "is_recurrent", False) for e in experts)
        self.checkpoints_loaded = False
        if paths is not None:
            for k, (expert, path) in enumerate(zip(self.experts, paths, strict=True)):
                try:
                    expert.load_state_dict(_expert_state(path, k), strict=True)
                except RuntimeError as e:
                    raise ValueError(
                        f"Expert {k} ({teachers[k]['class_name']}, observation set {self.expert_obs_sets[k]!r}) does "
                        f"not fit its checkpoint {path!r}: {e}\nGive teachers[{k}] the actor config (and obs groups) "
                        "that checkpoint was trained with."
                    ) from e
            self.checkpoints_loaded = True
        self.requires_grad_(False)
        # selector diagnostics on the device (not saved: the state dict holds only the experts' weights); 0-d, so
        # that the model also runs on batches of another size (an evaluation env)
        self.register_buffer("expert_ids", torch.zeros(num_envs, dtype=torch.long), persistent=False)
        self.register_buffer("_bad_count", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("_bad_env", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("_bad_value", torch.zeros((), dtype=torch.float64), persistent=False)
        self._select(selector.to("cpu"))  # the buffers are on the CPU until rsl_rl moves the model
        self.check_selector()  # the initial observation: a static misconfiguration fails at construction

    # ------------------------------------------------------------------ the selector
    def _select(self, selector: torch.Tensor) -> torch.Tensor:
        """Return each env's expert index (long, shape (num_envs,)); count invalid values on the device."""
        sel = selector.reshape(-1)
        if sel.is_floating_point():
            valid = (sel == sel.round()) & (sel >= 0) & (sel < self.num_experts)  # NaN fails every comparison
        else:
            valid = (sel >= 0) & (sel < self.num_experts)
        bad = ~valid
        count = bad.sum()
        first = bad.to(torch.int32).argmax()  # the first env with an invalid value (0 if none)
        seen = count > 0
        self._bad_env.copy_(torch.where(seen, first, self._bad_env))
        value = sel.gather(0, first.view(1)).reshape(()).to(torch.float64)  # no host read
        self._bad_value.copy_(torch.where(seen, value, self._bad_value))
        self._bad_count.add_(count)
        ids = torch.where(valid, sel, torch.zeros_like(sel)).to(torch.long)  # invalid: expert 0 until checked
        self.expert_ids = ids
        return ids

    def check_selector(self) -> None:
        """Read the selector diagnostics once (one host read), reset them, and raise if a value named no expert.

        Raises:
            SelectorError: naming an env, its value and the valid range.
        """
        stats = torch.stack([self._bad_count.double(), self._bad_env.double(), self._bad_value])
        count, env_i, value = stats.tolist()
        self._bad_count.zero_()
        if not count:
            return
        env_i = int(env_i)
        if value != value or value in (float("inf"), float("-inf")):
            what = "is not finite"
        elif value != round(value):
            what = "is fractional (expert indices are integers)"
        else:
            what = "is out of range"
        raise SelectorError(
            f"Observation group {self.selector_group!r} has the value {value!r} for env {env_i}, which {what}: "
            f"it must be an integer in 0..{self.num_experts - 1} ({self.num_experts} experts). {int(count)} such "
            "value(s) since the last check; fix the env's expert index (the run stopped before training on them)."
        )

    # ------------------------------------------------------------------ rsl_rl's model interface
    def forward(
        self,
        obs: TensorDict,
        masks: torch.Tensor | None = None,
        hidden_state: Any = None,
        stochastic_output: bool = False,
    ) -> torch.Tensor:
        """Return each env's own expert's output, shape (num_envs, output_dim), on the env's device.

        Every expert runs on every env (so recurrent experts follow every trajectory); one ``gather`` picks env
        ``i``'s row from expert ``selector[i]`` (exactly that expert's value). No host read.
        """
        if masks is not None or hidden_state is not None:
            raise NotImplementedError("MultiTeacherModel runs step by step (rollouts), not on padded batches.")
        ids = self._select(obs[self.selector_group])
        outs = torch.stack([expert(obs, stochastic_output=stochastic_output) for expert in self.experts])
        index = ids.view(1, -1, 1).expand(1, ids.shape[0], outs.shape[-1])
        return outs.gather(0, index).squeeze(0)

    def reset(self, dones: torch.Tensor | None = None, hidden_state: Any = None) -> None:
        """Reset every expert's hidden state (of the ``dones`` envs, or all); ``hidden_state``: one per expert."""
        states = hidden_state if hidden_state is not None else (None,) * self.num_experts
        for expert, state in zip(self.experts, states, strict=True):
            expert.reset(dones, state)

    def get_hidden_state(self) -> tuple[Any, ...] | None:
        """Return the experts' hidden states (a tuple, one per expert), or None if no expert is recurrent."""
        if not self.is_recurrent:
            return None
        return tuple(expert.get_hidden_state() for expert in self.experts)

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        """Detach every expert's hidden state."""
        for expert in self.experts:
            expert.detach_hidden_state(dones)

    def update_normalization(self, obs: TensorDict) -> None:
        """No-op: the experts are frozen (their normalizers come from their checkpoints)."""

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load the experts' weights (a state dict of this model: ``experts.<k>.*`` keys)."""
        if state_dict and not any(str(key).startswith("experts.") for key in state_dict):
            raise ValueError(
                "This state dict holds one model's weights (e.g. a PPO checkpoint's actor), not a MultiTeacherModel's "
                f"(keys 'experts.<k>.*'; got e.g. {sorted(state_dict)[:3]}). Give the experts' PPO checkpoints as "
                "the teacher section's 'checkpoints'; runner.load(path) takes a checkpoint of this model."
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def as_jit(self) -> nn.Module:
        """Not exportable: export the student (the deployed policy)."""
        raise NotImplementedError("MultiTeacherModel is a training-time teacher; export the student instead.")

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        """Not exportable: export the student (the deployed policy)."""
        return self.as_jit()


class _AttachLoss(torch.autograd.Function):
    """Identity on ``x``; its backward also sends gradient 1 to ``loss``: the loss joins any loss computed from x."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.loss_shape, ctx.loss_dtype = loss.shape, loss.dtype
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        return grad, torch.ones(ctx.loss_shape, dtype=ctx.loss_dtype, device=grad.device)


class _EstimatingGRU(nn.Module):
    """A state estimator and a policy GRU as one recurrent module (mode ``input``), scriptable for export.

    The estimator GRU reads the observation; its linear head's estimate, detached, joins the observation as the
    policy GRU's input. The hidden state is the two GRUs' states concatenated on the last dim, so rsl_rl's storage,
    resets and exports handle it as one GRU's: shape (num_layers, batch, hidden_size + estimator_hidden_size).
    """

    def __init__(
        self, input_size: int, hidden_size: int, estimator_hidden_size: int, estimate_dim: int, layers: int
    ) -> None:
        super().__init__()
        self.estimator_gru = nn.GRU(input_size, estimator_hidden_size, layers)
        self.head = nn.Linear(estimator_hidden_size, estimate_dim)
        self.policy_gru = nn.GRU(input_size + estimate_dim, hidden_size, layers)
        self.num_layers = layers
        self.policy_hidden_size = hidden_size
        self.hidden_size = hidden_size + estimator_hidden_size

    def run(self, x: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the policy GRU's output, the new hidden state and the estimate; ``x``: (time, batch, input)."""
        if h is None:
            h = torch.zeros(self.num_layers, x.shape[1], self.hidden_size, device=x.device, dtype=x.dtype)
        h_policy = h[..., : self.policy_hidden_size].contiguous()
        h_estimator = h[..., self.policy_hidden_size :].contiguous()
        features, h_estimator = self.estimator_gru(x, h_estimator)
        estimate = self.head(features)
        out, h_policy = self.policy_gru(torch.cat([x, estimate.detach()], dim=-1), h_policy)
        return out, torch.cat([h_policy, h_estimator], dim=-1), estimate

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """nn.GRU's interface: (output, new hidden state)."""
        out, h_new, _ = self.run(x, h)
        return out, h_new


def _packed_latent(
    model: RNNModel, obs: TensorDict, masks: torch.Tensor | None, hidden_state: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model.rnn.rnn``, a recurrent module with one packed state and ``run(x, h) -> (out, h_new, extra)``.

    Step by step (``masks`` None) rsl_rl's wrapper keeps the hidden state, as its RNN does; on PPO's padded
    trajectories the stored ``hidden_state`` starts them. Returns the output and the extra (EstimatorRNNModel's
    estimate, FilterRNNModel's rates), unpadded in batch mode.
    """
    x = MLPModel.get_latent(model, obs)  # the selected groups, normalised
    packed = model.rnn.rnn
    if masks is None:
        out, model.rnn.hidden_state, extra = packed.run(x.unsqueeze(0), model.rnn.hidden_state)
        return out.squeeze(0), extra.squeeze(0)
    if hidden_state is None:
        raise ValueError("Hidden states not passed to RNN module during policy update")
    out, _, extra = packed.run(x, hidden_state)
    return unpad_trajectories(out, masks), unpad_trajectories(extra, masks)


class _OnnxOneStateGRUModel(nn.Module):
    """ONNX export of a model whose ``rnn.rnn`` keeps more than a GRU's state in one tensor, as rsl_rl's GRU's.

    (obs, h_in) -> (actions, h_out): EstimatorRNNModel in mode ``input`` (two GRUs), FilterRNNModel (a GRU and its
    filters).
    """

    is_recurrent: bool = True

    def __init__(self, model: RNNModel, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose
        self.obs_normalizer = copy.deepcopy(model.obs_normalizer)
        self.rnn = copy.deepcopy(model.rnn.rnn)
        self.mlp = copy.deepcopy(model.mlp)
        dist = model.distribution
        self.deterministic_output = dist.as_deterministic_output_module() if dist is not None else nn.Identity()
        self.input_size, self.hidden_size, self.num_layers = model.obs_dim, self.rnn.hidden_size, self.rnn.num_layers

    def forward(self, obs: torch.Tensor, h_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run one step for ONNX export."""
        x, h = self.rnn(self.obs_normalizer(obs).unsqueeze(0), h_in)
        return self.deterministic_output(self.mlp(x.squeeze(0))), h

    def get_dummy_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return dummy inputs for ONNX tracing."""
        return torch.zeros(1, self.input_size), torch.zeros(self.num_layers, 1, self.hidden_size)

    @property
    def input_names(self) -> list[str]:
        """ONNX input names."""
        return ["obs", "h_in"]

    @property
    def output_names(self) -> list[str]:
        """ONNX output names."""
        return ["actions", "h_out"]


class EstimatorRNNModel(RNNModel):
    """rsl_rl's RNNModel whose memory is also trained to estimate the teacher's observation (a concurrent estimator).

    A linear head on the RNN's output predicts the observation set ``estimator_obs_set`` (by default the teacher's:
    on the quadcopter its velocity and physical parameters), normalised by running statistics. Wherever the model
    runs with gradients on observations that hold those groups (the update of MixingDistillation, MixingDAggerPPO or
    stock rsl_rl, which store every group), ``estimator_coef`` times the head's mean squared error joins the loss
    computed from the model's output: the RNN learns to remember what the teacher sees, not only what the teacher
    does. The policy itself is RNNModel's (the MLP reads the RNN's output), so rollouts, evaluation and the JIT/ONNX
    export are unchanged and never read the teacher's groups; the head is trained, never deployed.

    Attributes:
        estimator: ``nn.Linear(rnn_hidden_dim, estimate_dim)``: the estimate of the normalised target.
        estimator_groups: The observation groups of the target, in order.
        estimate_dim: Their total width.
        estimator_stats: Float tensor, shape (2,), on the model's device: the sum of the head's losses (normalised
            targets, before ``estimator_coef``) and their count since :meth:`take_estimator_stats`.
    """

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        estimator_obs_set: str = ESTIMATOR_KEYS["estimator_obs_set"],
        estimator_rows: list[int] | None = ESTIMATOR_KEYS["estimator_rows"],
        estimator_coef: float = ESTIMATOR_KEYS["estimator_coef"],
        estimator_mode: str = ESTIMATOR_KEYS["estimator_mode"],
        estimator_hidden_dim: int | None = ESTIMATOR_KEYS["estimator_hidden_dim"],
        **kwargs: Any,
    ) -> None:
        """Build RNNModel (``kwargs``: its keys) and the estimator head.

        Args:
            obs: Observation dictionary (every group the env returns).
            obs_groups: rsl_rl's mapping of observation sets to groups; ``obs_groups[estimator_obs_set]`` is the
                target.
            obs_set: The model's own observation set (``student`` or ``actor``).
            output_dim: Action dimension.
            estimator_obs_set: The observation set to estimate; ``teacher`` (the default) or e.g. ``critic``.
            estimator_rows: Which of its rows (0-based, in the concatenation of its groups) to estimate; None: all.
                E.g. ``[0, 1, 2]`` on the quadcopter: the body-frame linear velocity, what its blind student lacks.
            estimator_coef: Weight of the head's loss (normalised targets) beside the algorithm's loss, > 0.
            estimator_mode: ``auxiliary``: the head reads the policy's own RNN, whose memory the loss shapes;
                ``input``: a separate estimator GRU (``estimator_hidden_dim`` units) with the head, trained by its
                loss alone, whose estimate (detached) the policy's GRU reads beside the observation (a concurrent
                state estimator; GRU only).
            estimator_hidden_dim: The estimator GRU's units in mode ``input``; None: ``rnn_hidden_dim``.
            **kwargs: RNNModel's keys (``rnn_type``, ``rnn_hidden_dim``, ``hidden_dims``, ...).
        """
        super().__init__(obs, obs_groups, obs_set, output_dim, **kwargs)
        if estimator_mode not in ESTIMATOR_MODES:
            raise ValueError(
                f"estimator_mode={estimator_mode!r} is not one of {', '.join(map(repr, ESTIMATOR_MODES))}."
            )
        if estimator_mode == "input" and not isinstance(self.rnn.rnn, nn.GRU):
            raise ValueError("estimator_mode='input' needs rnn_type='gru' (its hidden state joins the policy GRU's).")
        if estimator_hidden_dim is not None and (
            isinstance(estimator_hidden_dim, bool)
            or not isinstance(estimator_hidden_dim, int)
            or estimator_hidden_dim < 1
        ):
            raise ValueError(f"estimator_hidden_dim={estimator_hidden_dim!r} must be an integer >= 1 or None.")
        if estimator_obs_set not in obs_groups:
            raise ValueError(
                f"estimator_obs_set={estimator_obs_set!r} is not an observation set of this run "
                f"(obs_groups: {', '.join(obs_groups)}); name the set whose groups the student should estimate."
            )
        groups = list(obs_groups[estimator_obs_set])
        missing = [g for g in groups if g not in obs.keys()]
        if not groups or missing:
            raise ValueError(
                f"estimator_obs_set={estimator_obs_set!r} names the groups {groups}, of which the env does not return "
                f"{missing} (it returns {', '.join(obs.keys())})."
            )
        if isinstance(estimator_coef, bool) or not isinstance(estimator_coef, (int, float)) or not estimator_coef > 0:
            raise ValueError(f"estimator_coef={estimator_coef!r} must be a number > 0.")
        if estimator_coef == float("inf"):
            raise ValueError(f"estimator_coef={estimator_coef!r} must be finite.")
        width = sum(obs[g].shape[-1] for g in groups)
        if estimator_rows is not None:
            rows = list(estimator_rows)
            bad = [r for r in rows if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < width]
            if not rows or bad or len(set(rows)) != len(rows):
                raise ValueError(
                    f"estimator_rows={estimator_rows!r} must be distinct row indices in 0..{width - 1} (the "
                    f"{width} rows of {estimator_obs_set!r}: {', '.join(groups)}), at least one; None: all rows."
                )
        self.estimator_groups = groups
        self.estimator_rows = None if estimator_rows is None else rows
        self.estimate_dim = width if estimator_rows is None else len(rows)
        self.register_buffer(
            "_estimator_index", torch.tensor(self.estimator_rows or [], dtype=torch.long), persistent=False
        )
        self.estimator_coef = float(estimator_coef)
        self.estimator_mode = estimator_mode
        if estimator_mode == "auxiliary":
            self.estimator: nn.Module | None = nn.Linear(self.latent_dim, self.estimate_dim)
        else:  # the policy GRU is rebuilt to read the estimate too
            gru = self.rnn.rnn
            hidden = estimator_hidden_dim or gru.hidden_size
            self.estimator = None
            self.rnn.rnn = _EstimatingGRU(gru.input_size, gru.hidden_size, hidden, self.estimate_dim, gru.num_layers)
        self.estimator_normalizer = EmpiricalNormalization(self.estimate_dim)
        self.register_buffer("estimator_stats", torch.zeros(2), persistent=False)

    def get_latent(self, obs: TensorDict, masks: torch.Tensor | None = None, hidden_state: Any = None) -> torch.Tensor:
        """Return RNNModel's latent; with gradients on and the target groups present, attach the head's loss."""
        if self.estimator is not None:
            latent = super().get_latent(obs, masks, hidden_state)
            estimate = None
        else:
            latent, estimate = _packed_latent(self, obs, masks, hidden_state)
        if not torch.is_grad_enabled() or any(g not in obs.keys() for g in self.estimator_groups):
            return latent  # rollouts (inference mode), evaluation and deployment: no target, no cost
        target = self._target(obs)
        if masks is not None:  # PPO's padded trajectories: the RNN's output was unpadded
            target = unpad_trajectories(target, masks)
        target = self.estimator_normalizer(target).detach()
        if estimate is None:
            estimate = self.estimator(latent)
        loss = (estimate.float() - target.float()).square().mean()
        self.estimator_stats += torch.stack([loss.detach(), torch.ones_like(loss)])
        return _AttachLoss.apply(latent, loss * self.estimator_coef)

    def as_jit(self) -> nn.Module:
        """Return the TorchScript-ready policy (rsl_rl's GRU export; mode ``input``: both GRUs, one state)."""
        if self.estimator is not None:
            return super().as_jit()
        return _TorchGRUModel(self)

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        """Return the ONNX-ready policy (rsl_rl's; mode ``input``: (obs, h_in) -> (actions, h_out))."""
        if self.estimator is not None:
            return super().as_onnx(verbose)
        return _OnnxOneStateGRUModel(self, verbose)

    def update_normalization(self, obs: TensorDict) -> None:
        """Update RNNModel's observation statistics and the target's."""
        super().update_normalization(obs)
        if all(g in obs.keys() for g in self.estimator_groups):
            self.estimator_normalizer.update(self._target(obs))

    def _target(self, obs: TensorDict) -> torch.Tensor:
        """Return the estimated rows of ``obs`` (unnormalised), shape (..., estimate_dim)."""
        target = torch.cat([obs[g] for g in self.estimator_groups], dim=-1)
        return target if self.estimator_rows is None else target.index_select(-1, self._estimator_index)

    def take_estimator_stats(self) -> torch.Tensor:
        """Return :attr:`estimator_stats` (loss sum, count; on the device) and zero them: once per update."""
        stats = self.estimator_stats.clone()
        self.estimator_stats.zero_()
        return stats


_MAX_PENDING_STEPS = 1024
"""Rollout steps of rates a FilterRNNModel keeps for its statistics before it folds them in unasked."""


class _FilterBankGRU(nn.Module):
    """A GRU that also reads its input's smoothed rates of change from a fixed bank of exponential filters.

    Each of ``K`` filters is an exponential moving average of the (normalised) input with time constant ``tau_k``
    env steps, bias-corrected as Adam's moments are (so a state zeroed at a reset restarts from the first input).
    A ramp ``x(t) = v t`` lags ``v (tau_k - 1)`` behind in filter ``k``, so
    ``(ema_k - ema_{k+1}) / (tau_{k+1} - tau_k)`` is ``v`` per env step, smoothed over ``tau_{k+1}`` steps: a
    velocity from noisy positions, which a GRU alone learns slowly (RESULTS.md, the blind quadcopter). The ``K - 1``
    rate estimates of every input row, normalised by running statistics, join the input of the GRU. The hidden state
    is the GRU's state followed by the filters' state (their sums and bias weights), so rsl_rl's storage, resets and
    exports handle it as one GRU's: shape (num_layers, batch, hidden_size + K * input_size + K); the filters' state
    is kept in every layer's slot.
    """

    def __init__(self, input_size: int, hidden_size: int, layers: int, time_constants: Sequence[float]) -> None:
        super().__init__()
        tau = torch.tensor([float(t) for t in time_constants])
        self.num_filters = len(time_constants)
        self.gru = nn.GRU(input_size * self.num_filters, hidden_size, layers)  # x and K - 1 rates of each row
        self.rate_normalizer = EmpiricalNormalization(input_size * (self.num_filters - 1))
        self.register_buffer("alpha", 1.0 / tau)
        self.register_buffer("gain", 1.0 / (tau[1:] - tau[:-1]))
        self.input_size = input_size
        self.num_layers = layers
        self.gru_hidden_size = hidden_size
        self.hidden_size = hidden_size + self.num_filters * input_size + self.num_filters

    def run(self, x: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the GRU's output, the new hidden state and the raw rates; ``x``: (time, batch, input)."""
        steps, batch, k, d = x.shape[0], x.shape[1], self.num_filters, self.input_size
        if h is None:
            h = torch.zeros(self.num_layers, batch, self.hidden_size, device=x.device, dtype=x.dtype)
        h_gru = h[..., : self.gru_hidden_size].contiguous()
        state = h[0, :, self.gru_hidden_size :]
        sums = state[:, : k * d].reshape(batch, k, d)
        weights = state[:, k * d :]
        alpha = self.alpha.to(x.dtype)
        alpha_rows, gain_rows = alpha.unsqueeze(-1), self.gain.to(x.dtype).unsqueeze(-1)  # once, not per step
        rates = []
        for t in range(steps):
            sums = sums + alpha_rows * (x[t].unsqueeze(1) - sums)
            weights = weights + alpha * (1.0 - weights)
            ema = sums / weights.unsqueeze(-1)
            rates.append(((ema[:, :-1] - ema[:, 1:]) * gain_rows).reshape(batch, -1))
        rate = torch.stack(rates)
        out, h_gru = self.gru(torch.cat([x, self.rate_normalizer(rate)], dim=-1), h_gru)
        state = torch.cat([sums.reshape(batch, k * d), weights], dim=-1)
        state = state.unsqueeze(0).expand(self.num_layers, batch, state.shape[-1])
        return out, torch.cat([h_gru, state], dim=-1), rate

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """nn.GRU's interface: (output, new hidden state)."""
        out, h_new, _ = self.run(x, h)
        return out, h_new

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "alpha")
        if saved is not None and (
            saved.shape != self.alpha.shape or not torch.allclose(saved.to(self.alpha), self.alpha)
        ):
            raise ValueError(
                f"This FilterRNNModel's filter_time_constants are {(1.0 / self.alpha).tolist()}, the checkpoint's "
                f"{(1.0 / saved.float()).tolist()}: build the model with the checkpoint's time constants."
            )
        super()._load_from_state_dict(state_dict, prefix, *args)


class FilterRNNModel(RNNModel):
    """rsl_rl's RNNModel (a GRU) whose GRU also reads its observation's rates of change from fixed filters.

    The rates come from exponential filters of the normalised observation at ``filter_time_constants`` (env steps;
    :class:`_FilterBankGRU`): a student that must infer a velocity from noisy positions (the blind quadcopter) gets
    smoothed finite differences at several time scales instead of learning the filter inside its GRU. The filters
    have no parameters and read only the model's own observations, so the deployed policy is the same function of
    the same inputs; the JIT and ONNX exports carry them in the hidden state.
    """

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        filter_time_constants: Sequence[float] = tuple(FILTER_KEYS["filter_time_constants"]),
        **kwargs: Any,
    ) -> None:
        """Build RNNModel (``kwargs``: its keys; ``rnn_type`` must be ``gru``) and the filter bank.

        Args:
            obs: Observation dictionary.
            obs_groups: rsl_rl's mapping of observation sets to groups.
            obs_set: The model's own observation set (``student`` or ``actor``).
            output_dim: Action dimension.
            filter_time_constants: At least two increasing time constants (env steps, each >= 1).
            **kwargs: RNNModel's keys (``rnn_hidden_dim``, ``hidden_dims``, ...).
        """
        super().__init__(obs, obs_groups, obs_set, output_dim, **kwargs)
        tau = list(filter_time_constants)
        if (
            len(tau) < 2
            or any(isinstance(t, bool) or not isinstance(t, (int, float)) or not 1 <= t < float("inf") for t in tau)
            or any(not a < b for a, b in zip(tau, tau[1:], strict=False))
        ):
            raise ValueError(
                f"filter_time_constants={filter_time_constants!r} must be at least two increasing, finite numbers "
                ">= 1 (env steps)."
            )
        gru = self.rnn.rnn
        if not isinstance(gru, nn.GRU):
            raise ValueError("FilterRNNModel needs rnn_type='gru' (the filters' state joins the GRU's).")
        self.filter_time_constants = [float(t) for t in tau]
        self.rnn.rnn = _FilterBankGRU(gru.input_size, gru.hidden_size, gru.num_layers, tau)
        self._pending_rates: list[torch.Tensor] = []  # the rollout's rates, for the statistics' next update

    def get_latent(self, obs: TensorDict, masks: torch.Tensor | None = None, hidden_state: Any = None) -> torch.Tensor:
        """Return the GRU's output; a rollout step (train mode, no gradient) keeps its rates for the statistics."""
        out, rate = _packed_latent(self, obs, masks, hidden_state)
        if masks is None and self.training and not torch.is_grad_enabled():  # a rollout step (updates have gradients)
            self._pending_rates.append(rate)
            if len(self._pending_rates) >= _MAX_PENDING_STEPS:  # a caller that never updates the statistics
                self._fold_rates()
        return out

    def update_normalization(self, obs: TensorDict) -> None:
        """Update RNNModel's observation statistics and the rates' with the rollout steps since the last call.

        So the rates' statistics change when rsl_rl's observation normaliser does (after each step, or once after the
        update, depending on the rsl-rl-lib version and the algorithm), and an update recomputes the rates the
        rollout saw. The rates are normalised even where the observation is not (``obs_normalization=False``).
        """
        super().update_normalization(obs)
        self._fold_rates()

    def _fold_rates(self) -> None:
        if self._pending_rates:
            self.rnn.rnn.rate_normalizer.update(torch.cat(self._pending_rates))
            self._pending_rates = []

    def as_jit(self) -> nn.Module:
        """Return the TorchScript-ready policy (rsl_rl's GRU export, the filters in the hidden state)."""
        return _TorchGRUModel(self)

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        """Return the ONNX-ready policy: (obs, h_in) -> (actions, h_out)."""
        return _OnnxOneStateGRUModel(self, verbose)
