"""Cue doors: a batched 2-D information-gathering task where imitating the privileged teacher provably fails."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from dagmix.envs.cfg_checks import check_fields


@dataclass
class CueDoorsEnvCfg:
    """Configuration of :class:`CueDoorsEnv` (lengths in arbitrary units, one unit = the doors' height)."""

    max_speed: float = 2.0
    """Speed (units/s) at action 1 on an axis: the position moves by ``action * max_speed * dt`` per step."""
    dt: float = 0.1
    """Env step (s)."""
    start_noise: float = 0.1
    """Start position: each axis uniform in [-start_noise, start_noise] around (0, 0)."""
    door_x: float = 0.6
    """The doors are at (-door_x, door_y) and (+door_x, door_y)."""
    door_y: float = 0.6
    """Height of the doors (ahead of the start)."""
    door_radius: float = 0.2
    """Entering a door's disc of this radius ends the episode."""
    cue_x: float = 0.0
    """The cue spot's centre, x."""
    cue_y: float = -0.4
    """The cue spot's centre, y (behind the start, away from the doors)."""
    cue_radius: float = 0.2
    """Entering the cue's disc shows the goal side to the student for the rest of the episode."""
    success_reward: float = 1.0
    """Reward for entering the goal door."""
    wrong_door_reward: float = -1.0
    """Reward for entering the other door (the episode ends either way): -1 makes a blind guess worth nothing."""
    step_reward: float = -0.01
    """Reward every step (a small cost of time)."""
    box: float = 2.0
    """Leaving the box |x| <= box, |y| <= box ends the episode."""
    out_reward: float = -1.0
    """Reward for leaving the box: below any other ending, so that leaving is never a way out of the step cost."""
    max_episode_length: int = 60
    """Steps before a time-out."""
    stats_window: int = 24
    """Env steps over which the logged episode statistics are averaged."""

    def __post_init__(self) -> None:
        """Validate; errors name the field, the value and the valid range."""
        check_fields(self)  # types and finite numbers
        for name in ("max_speed", "dt", "door_radius", "cue_radius", "box"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CueDoorsEnvCfg.{name}={getattr(self, name)!r} must be > 0.")
        if not self.start_noise >= 0:
            raise ValueError(f"CueDoorsEnvCfg.start_noise={self.start_noise!r} must be >= 0.")
        if not self.door_x > self.door_radius:
            raise ValueError(
                f"CueDoorsEnvCfg.door_x={self.door_x!r} must be > door_radius={self.door_radius!r} (the doors would "
                "overlap)."
            )
        for name in ("max_episode_length", "stats_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CueDoorsEnvCfg.{name}={value!r} must be an int >= 1.")


class CueDoorsEnv(VecEnv):
    """A point agent must enter the one of two doors that is the goal; only the teacher sees which one.

    The agent starts near (0, 0) (uniform within 0.1 per axis) and moves with velocity control: actions
    (num_envs, 2), clamped to [-1, 1], move it by ``action * max_speed * dt`` (0.2 per axis per step at the
    defaults). Two doors (discs of radius 0.2) stand at (-0.6, 0.6) and (+0.6, 0.6); each episode one of them is the
    goal, side ``g`` in {-1, +1} drawn uniformly at reset. A cue spot (disc of radius 0.2) lies at (0, -0.4), behind
    the start. Going straight to the goal door takes about 3 steps; via the cue about 5.

    Rewards: -0.01 per step; +1 for entering the goal door, -1 for the other door (either ends the episode): a blind
    guess is worth nothing, the cue about +0.95. With 0 for the wrong door a guess is worth 0.5, and PPO on the
    student's observations settled on always taking one door (one seed here, and every try at a first layout twice
    as large, with doors at (+-1, 1)); with -1, at these distances (both doors and the cue within reach of a random
    walk), it learned to fetch the cue in 10-20 iterations (3 seeds, 1024 envs). Leaving the box
    |x|, |y| <= 2 ends the episode with -1 (never a way out of the step cost); 60 steps are a time-out
    (``extras["time_outs"]``, only for episodes that did not end otherwise).

    Observation groups (TensorDict, batch (num_envs,), float32 on ``device``):
        ``teacher`` (3): position (x, y), goal side g (privileged).
        ``policy`` (5, the student): position, last clamped action, the latched cue: 0 until the agent has
            entered the cue disc in this episode, g from that step on.
        ``critic`` (4): position, goal side g, the latched cue (for a critic of the student's policy, whose value
            depends on whether it has seen the cue).

    Why imitation fails: the teacher goes straight to the goal door and never visits the cue, so on every state a
    student without the cue reaches, the teacher's label depends on g, which the student cannot see; its best
    imitation is the average of the two labels (straight up, between the doors), and nothing in the labels tells
    it to go to the cue. PPO on the student's own observations learns to fetch the cue and then the right door.

    ``extras["log"]``: ``Episode/success_rate`` (entered the goal door), ``Episode/final_distance`` (distance to
    the goal door's centre at the end), ``Episode/wrong_door_rate`` and ``Episode/cue_rate`` (visited the cue),
    means over the episodes that ended in the last ``stats_window`` steps (0-d tensors, no host sync). After each
    ``step``, ``last_episode_success`` (bool) and ``last_episode_final_distance`` (float), shape (num_envs,), hold
    the outcome of the episodes that ended in that step (valid where ``dones``), as ``evaluate_policy`` reads them.
    State tensors are preallocated and updated in place; a seeded generator on ``device`` draws the resets.
    """

    def __init__(
        self, num_envs: int, device: str | torch.device = "cpu", seed: int = 0, cfg: CueDoorsEnvCfg | None = None
    ) -> None:
        """Args: num_envs: parallel envs; device: torch device; seed: env RNG seed; cfg: the task config."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} must be a positive int.")
        self.cfg = cfg or CueDoorsEnvCfg()
        c = self.cfg
        self.num_envs, self.num_actions = num_envs, 2
        self.device = torch.device(device)
        self.max_episode_length = c.max_episode_length
        n, dev = num_envs, self.device
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(seed))
        self.pos = torch.zeros(n, 2, device=dev)
        self.goal_side = torch.zeros(n, device=dev)  # g in {-1, +1}, float for the observations
        self.cue_seen = torch.zeros(n, dtype=torch.bool, device=dev)
        self.last_action = torch.zeros(n, 2, device=dev)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self._uniform = torch.empty(n, 3, device=dev)  # reset draws: start x, start y, goal side
        self._fresh_pos = torch.empty(n, 2, device=dev)
        self._fresh_side = torch.empty(n, device=dev)
        self._cue = torch.tensor([c.cue_x, c.cue_y], device=dev)
        self.last_episode_success = torch.zeros(n, dtype=torch.bool, device=dev)
        self.last_episode_final_distance = torch.zeros(n, device=dev)
        self._stats = torch.zeros(c.stats_window, 5, device=dev)  # per step: success, distance, wrong, cue, ends
        self._stats_i = 0
        self.reset()

    def _draw_reset_state(self) -> None:
        """Draw a start position and goal side for every env into ``_fresh_pos`` / ``_fresh_side``."""
        u = torch.rand(self._uniform.shape, generator=self.gen, device=self.device, out=self._uniform)
        torch.mul(u[:, 0:2].mul(2.0).sub_(1.0), self.cfg.start_noise, out=self._fresh_pos)
        torch.sign(u[:, 2].sub(0.5), out=self._fresh_side)  # -1 or +1 (exactly 0.5: probability ~2^-24)

    def _in_cue(self) -> torch.Tensor:
        return (self.pos - self._cue).square().sum(-1) <= self.cfg.cue_radius**2

    def reset(self) -> TensorDict:
        """Reset every env (new start positions and goal sides) and return the observations."""
        self._draw_reset_state()
        self.pos.copy_(self._fresh_pos)
        self.goal_side.copy_(self._fresh_side)
        self.cue_seen.copy_(self._in_cue())
        self.last_action.zero_()
        self.episode_length_buf.zero_()
        self._stats.zero_()
        self._stats_i = 0
        return self.get_observations()

    def get_observations(self) -> TensorDict:
        """Return the ``policy``, ``teacher`` and ``critic`` groups (new tensors: rsl_rl keeps them across steps)."""
        side = self.goal_side.unsqueeze(-1)
        cue = torch.where(self.cue_seen.unsqueeze(-1), side, 0.0)
        return TensorDict(
            {
                "policy": torch.cat([self.pos, self.last_action, cue], dim=-1),
                "teacher": torch.cat([self.pos, side], dim=-1),
                "critic": torch.cat([self.pos, side, cue], dim=-1),
            },
            batch_size=[self.num_envs],
            device=self.device,
        )

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Apply actions (num_envs, 2), clamped to [-1, 1]; return obs, rewards, dones (bool), extras."""
        c = self.cfg
        torch.clamp(actions, -1.0, 1.0, out=self.last_action)
        self.pos.add_(self.last_action, alpha=c.max_speed * c.dt)
        self.episode_length_buf += 1
        self.cue_seen |= self._in_cue()
        x, y = self.pos[:, 0], self.pos[:, 1]
        dy2 = (y - c.door_y).square()
        dist = ((x - self.goal_side * c.door_x).square() + dy2).sqrt()  # to the goal door's centre
        wrong_dist2 = (x + self.goal_side * c.door_x).square() + dy2
        success = dist <= c.door_radius
        wrong = wrong_dist2 <= c.door_radius**2  # the doors do not overlap (door_x > door_radius)
        out = self.pos.abs().amax(-1) > c.box
        terminated = success | wrong | out
        time_outs = (self.episode_length_buf >= c.max_episode_length) & ~terminated
        dones = terminated | time_outs
        rewards = torch.full_like(dist, c.step_reward)
        rewards.add_(success.float(), alpha=c.success_reward).add_(wrong.float(), alpha=c.wrong_door_reward)
        rewards.add_(out.float(), alpha=c.out_reward)
        self.last_episode_success = success & dones
        self.last_episode_final_distance = dist
        # windowed episode statistics (device-only)
        d = dones.float()
        ended = torch.stack([success.float(), dist, wrong.float(), self.cue_seen.float(), torch.ones_like(d)])
        torch.mv(ended, d, out=self._stats[self._stats_i])
        self._stats_i = (self._stats_i + 1) % self._stats.shape[0]
        totals = self._stats.sum(0)
        count = totals[4].clamp(min=1.0)
        extras = {
            "time_outs": time_outs,
            "log": {
                "Episode/success_rate": totals[0] / count,
                "Episode/final_distance": totals[1] / count,
                "Episode/wrong_door_rate": totals[2] / count,
                "Episode/cue_rate": totals[3] / count,
            },
        }
        # reset finished envs in place (masked writes), then draw the next resets' values
        done2 = dones.unsqueeze(-1)
        torch.where(done2, self._fresh_pos, self.pos, out=self.pos)
        torch.where(dones, self._fresh_side, self.goal_side, out=self.goal_side)
        self.last_action.masked_fill_(done2, 0.0)
        self.episode_length_buf.masked_fill_(dones, 0)
        self.cue_seen.copy_(torch.where(dones, self._in_cue(), self.cue_seen))
        self._draw_reset_state()
        return self.get_observations(), rewards, dones, extras
