"""The quadcopter with one start condition per env, level or thrown, and each env's expert as an observation.

The built-in multi-expert example (``dagmix.envs.make("quadcopter_experts", ...)``): env ``i`` starts level and at
rest (expert 0, the ``quadcopter`` teacher's start) or thrown (expert 1, the ``quadcopter_thrown`` teacher's start),
fixed by its index, and the observation group ``expert_id`` says which, for
:class:`dagmix.models.MultiTeacherModel`'s selector. See docs/multi_teacher.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict

from dagmix.envs.quadcopter import OMEGA, POS, QuadcopterEnv, QuadcopterEnvCfg, fastest_episode_steps

LEVEL, THROWN = 0, 1
"""The experts (start conditions) of :class:`QuadcopterExpertsEnv`: level and at rest, thrown."""


@dataclass
class QuadcopterExpertsEnvCfg(QuadcopterEnvCfg):
    """Configuration of :class:`QuadcopterExpertsEnv`: the quadcopter's, plus which env starts how."""

    expert_cycle: tuple[int, ...] = (LEVEL, THROWN)
    """Each env's start condition (its expert), by env index: env ``i`` gets ``expert_cycle[i % len(expert_cycle)]``,
    0 (level and at rest at ``level_spawn_height``, as ``quadcopter``) or 1 (the ``spawn_*`` start, thrown in the
    ``quadcopter_experts`` task, as ``quadcopter_thrown``). The default alternates; ``(0,)`` or ``(1,)`` gives every
    env one condition (one expert's envs, e.g. to evaluate on them or to distill one expert alone)."""
    level_spawn_height: float = 0.5
    """Initial height (m) of the level starts (``quadcopter``'s ``spawn_height``)."""

    def __post_init__(self) -> None:
        """Validate; errors name the field, the value and the valid range."""
        super().__post_init__()
        cycle = self.expert_cycle
        if (
            not isinstance(cycle, (tuple, list))
            or not cycle
            or any(isinstance(k, bool) or k not in (LEVEL, THROWN) for k in cycle)
        ):
            raise ValueError(
                f"QuadcopterExpertsEnvCfg.expert_cycle={cycle!r} must be a non-empty list of expert indices, each "
                "0 (level start) or 1 (thrown start), e.g. [0, 1] (alternating) or [1] (thrown only)."
            )
        if not self.min_height < self.level_spawn_height < self.max_height:
            raise ValueError(
                f"QuadcopterExpertsEnvCfg: level_spawn_height={self.level_spawn_height} must lie strictly between "
                f"min_height={self.min_height} and max_height={self.max_height}."
            )


class QuadcopterExpertsEnv(QuadcopterEnv):
    """The quadcopter with a level or thrown start per env (fixed by env index) and an ``expert_id`` observation.

    Observation groups: the quadcopter's ``policy`` and ``teacher``, plus ``expert_id``: float, shape
    (num_envs, 1), each env's expert (0 level, 1 thrown), constant over the run. Every reset draws the thrown
    start's values for every env, as ``quadcopter_thrown`` does (a full-size draw from ``gen``: same-episode
    evaluations replay it), and the level envs then take the level pose; no host read in ``step``.
    """

    cfg: QuadcopterExpertsEnvCfg

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        cfg: QuadcopterExpertsEnvCfg | None = None,
    ) -> None:
        """Args: num_envs: parallel envs; device: torch device; seed: env RNG seed; cfg: the task config."""
        c = cfg or QuadcopterExpertsEnvCfg()
        dev = torch.device(device)
        cycle = torch.tensor(c.expert_cycle, dtype=torch.long, device=dev)
        if isinstance(num_envs, int) and num_envs >= 1:  # else QuadcopterEnv raises its own error
            self.expert_ids = cycle[torch.arange(num_envs, device=dev) % cycle.numel()]
            """Long tensor, shape (num_envs,), on the env's device: each env's expert (0 level, 1 thrown)."""
            self._level = (self.expert_ids == LEVEL).unsqueeze(0)
            self._expert_obs = self.expert_ids.to(torch.float32).unsqueeze(1)
            # position, velocity, quaternion, body rates of a level start at rest (rows 0:13 of the state)
            pose = torch.zeros(OMEGA.stop, 1, device=dev)
            pose[2], pose[6] = c.level_spawn_height, 1.0
            self._level_pose = pose
        super().__init__(num_envs, device=device, seed=seed, cfg=c)
        # the draw period must suit the faster of the two starts (each reset still gets a fresh draw)
        self.min_episode_steps = min(self.min_episode_steps, fastest_episode_steps(c, c.level_spawn_height, 0.0))
        self.reset_draw_period = max(1, min(8, self.min_episode_steps - 1))

    def _draw_reset_state(self) -> torch.Tensor:
        fresh = super()._draw_reset_state()  # every env's draw (the thrown start's values included)
        pose = fresh[POS.start : OMEGA.stop]
        torch.where(self._level, self._level_pose, pose, out=pose)
        return fresh

    def _obs(self) -> TensorDict:
        obs = super()._obs()
        obs["expert_id"] = self._expert_obs
        return obs
