"""Batched 6-DoF quadcopter point control in pure PyTorch, modelled on Isaac Lab's Isaac-Quadcopter-Direct."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from dagmix.envs.cfg_checks import check_fields, check_range

# Row layout of the state tensor, component-major (STATE_DIM, num_envs): every component is a contiguous row, so
# the physics runs as a few dozen cheap elementwise kernels, and a reset is one torch.where over the whole state.
POS, VEL, QUAT, OMEGA, GOAL, MASS, TTW, LAST_ACTION = (
    slice(0, 3),
    slice(3, 6),
    slice(6, 10),
    slice(10, 13),
    slice(13, 16),
    slice(16, 17),
    slice(17, 18),
    slice(18, 22),
)
STATE_DIM = 22


@dataclass
class QuadcopterEnvCfg:
    """Configuration of :class:`QuadcopterEnv` (defaults follow Isaac Lab's Isaac-Quadcopter-Direct)."""

    mass: float = 0.027
    """Nominal body mass (kg), a Crazyflie."""
    inertia: tuple[float, float, float] = (1.4e-5, 1.4e-5, 2.17e-5)
    """Diagonal body inertia (kg m^2)."""
    gravity: float = 9.81
    """Gravity (m/s^2)."""
    thrust_to_weight: float = 1.9
    """Nominal maximum thrust over weight."""
    moment_scale: float = 0.01
    """Body moment (N m) per unit action."""
    physics_dt: float = 0.01
    """Physics step (s)."""
    decimation: int = 2
    """Physics steps per env step."""
    episode_length_s: float = 10.0
    """Episode length (s); 500 env steps by default."""
    goal_xy_range: float = 2.0
    """Goals x, y are uniform in [-goal_xy_range, goal_xy_range] (m)."""
    goal_z_range: tuple[float, float] = (0.5, 1.5)
    """Goal height range (m)."""
    spawn_height: float = 0.5
    """Initial height (m); level and at rest unless the three ``spawn_*`` ranges below are set (a thrown start)."""
    spawn_tilt: float = 0.0
    """Initial tilt (rad): a rotation about a random horizontal axis by an angle uniform in [0, spawn_tilt]."""
    spawn_lin_vel: float = 0.0
    """Initial linear velocity (m/s), each world axis uniform in [-spawn_lin_vel, spawn_lin_vel]."""
    spawn_ang_vel: float = 0.0
    """Initial body rates (rad/s), each axis uniform in [-spawn_ang_vel, spawn_ang_vel]."""
    min_height: float = 0.1
    """Terminate below this height (m)."""
    max_height: float = 2.0
    """Terminate above this height (m)."""
    max_angular_speed: float = 35.0
    """Physical cap of each body rate (rad/s, a gyro's range): random actions cannot spin the state to overflow."""
    lin_vel_reward_scale: float = -0.05
    """Weight of the squared body linear velocity (times the step dt)."""
    ang_vel_reward_scale: float = -0.01
    """Weight of the squared body angular velocity (times the step dt)."""
    distance_to_goal_reward_scale: float = 15.0
    """Weight of 1 - tanh(distance / 0.8) (times the step dt)."""
    success_radius: float = 0.1
    """An episode succeeds if it ends within this distance of the goal (m)."""
    mass_range: tuple[float, float] = (0.8, 1.2)
    """Per-env mass multiplier, uniform, drawn at reset (equal bounds: no randomization)."""
    thrust_to_weight_range: tuple[float, float] = (1.7, 2.1)
    """Per-env thrust-to-weight, uniform, drawn at reset (equal bounds: no randomization)."""
    gyro_noise: float = 0.05
    """Std of the student's gyro noise (rad/s)."""
    gravity_noise: float = 0.02
    """Std of the student's projected-gravity noise."""
    position_noise: float = 0.02
    """Std of the student's goal-relative position noise (m)."""
    velocity_noise: float | None = 0.05
    """The student also observes its body-frame linear velocity, as a flying drone's state estimator (a flow deck,
    say) gives it, with Gaussian noise of this std (m/s), drawn afresh each step (default 0.05; 0 gives the exact
    velocity). None: the student does not observe its velocity (13 observations instead of 16), the task of the
    results made before this became the default; without it no distillation setting reaches the teacher's success
    (benchmarks/RESULTS.md, "What limits the student")."""
    stats_window: int = 24
    """Env steps over which the logged episode success rate and final distance are averaged."""

    def __post_init__(self) -> None:
        """Validate; errors name the field, the value and the valid range."""
        v = self.velocity_noise
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or not math.isfinite(v)
        ):
            raise ValueError(
                f"QuadcopterEnvCfg.velocity_noise={v!r} must be None (no velocity for the student) or a number >= 0 "
                "(finite: an infinite noise makes the student's observations infinite)."
            )
        check_fields(self)  # types, finite numbers, tuples of the right length
        positive = ("mass", "gravity", "thrust_to_weight", "physics_dt", "episode_length_s", "spawn_height")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"QuadcopterEnvCfg.{name}={getattr(self, name)!r} must be > 0.")
        names = ("moment_scale", "max_angular_speed", "success_radius", "goal_xy_range")
        for name in (*names, "spawn_tilt", "spawn_lin_vel", "spawn_ang_vel"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"QuadcopterEnvCfg.{name}={getattr(self, name)!r} must be >= 0.")
        if isinstance(self.decimation, bool) or not isinstance(self.decimation, int) or self.decimation < 1:
            raise ValueError(f"QuadcopterEnvCfg.decimation={self.decimation!r} must be an int >= 1.")
        if not self.min_height < self.spawn_height < self.max_height:
            raise ValueError(
                f"QuadcopterEnvCfg: spawn_height={self.spawn_height} must lie strictly between min_height="
                f"{self.min_height} and max_height={self.max_height}."
            )
        for name in ("goal_z_range", "mass_range", "thrust_to_weight_range"):
            check_range(self, name)
        if not all(i > 0 for i in self.inertia):
            raise ValueError(f"QuadcopterEnvCfg.inertia={self.inertia!r} must be three positive numbers.")
        for name in ("gyro_noise", "gravity_noise", "position_noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"QuadcopterEnvCfg.{name}={getattr(self, name)!r} must be >= 0.")
        if not isinstance(self.stats_window, int) or self.stats_window < 1:
            raise ValueError(f"QuadcopterEnvCfg.stats_window={self.stats_window!r} must be an int >= 1.")

    @property
    def thrown(self) -> bool:
        """Whether episodes start from a random attitude, velocity or body rate (any ``spawn_*`` range set)."""
        return self.spawn_tilt > 0 or self.spawn_lin_vel > 0 or self.spawn_ang_vel > 0

    @property
    def step_dt(self) -> float:
        """Env step duration (s)."""
        return self.physics_dt * self.decimation


class QuadcopterEnv(VecEnv):
    """A batched quadcopter flying to a goal point: an rsl_rl VecEnv on CPU or CUDA, no host syncs in ``step``.

    Observation groups (TensorDict, batch (num_envs,)):
        ``teacher`` (14): body linear velocity, body angular velocity, projected gravity, goal in the body frame,
            mass ratio - 1, thrust_to_weight - nominal (the privileged state and randomized parameters).
        ``policy`` (16): noisy gyro, noisy projected gravity, noisy goal in the body frame, last clamped action,
            noisy body linear velocity (the last three); (13) with ``cfg.velocity_noise=None``: without the velocity.

    ``extras["log"]``: ``Episode/success_rate`` and ``Episode/final_distance``, means over the episodes that
    ended in the last ``stats_window`` steps (each episode counted once; 0-d tensors, no host sync).
    After each ``step``, ``last_episode_success`` (bool) and ``last_episode_final_distance`` (float), shape
    (num_envs,), hold the outcome of the episodes that ended in that step (valid where ``dones``).
    """

    def __init__(
        self, num_envs: int, device: str | torch.device = "cpu", seed: int = 0, cfg: QuadcopterEnvCfg | None = None
    ) -> None:
        """Args: num_envs: parallel envs; device: torch device; seed: env RNG seed; cfg: the task config."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} must be a positive int.")
        self.cfg = cfg or QuadcopterEnvCfg()
        c = self.cfg
        self.num_envs, self.num_actions = num_envs, 4
        self.device = torch.device(device)
        self.max_episode_length = int(round(c.episode_length_s / c.step_dt))
        self.step_dt = c.step_dt
        n, dev = num_envs, self.device
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(seed))
        self.state = torch.zeros(STATE_DIM, n, device=dev)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=dev)
        # reset template: constant rows (spawn pose) plus rows 13:18 (goal, mass, thrust_to_weight) drawn fresh
        self._fresh = torch.zeros(STATE_DIM, n, device=dev)
        self._fresh[2], self._fresh[6] = c.spawn_height, 1.0  # position z, quaternion w
        self._draw_low = torch.tensor(
            [
                -c.goal_xy_range,
                -c.goal_xy_range,
                c.goal_z_range[0],
                c.mass * c.mass_range[0],
                c.thrust_to_weight_range[0],
            ],
            device=dev,
        ).unsqueeze(1)
        self._draw_span = torch.tensor(
            [
                2 * c.goal_xy_range,
                2 * c.goal_xy_range,
                c.goal_z_range[1] - c.goal_z_range[0],
                c.mass * (c.mass_range[1] - c.mass_range[0]),
                c.thrust_to_weight_range[1] - c.thrust_to_weight_range[0],
            ],
            device=dev,
        ).unsqueeze(1)
        # a thrown start draws 8 more numbers per reset: velocity (3), body rates (3), tilt angle and axis (2); a
        # level start draws none of them, so its random stream is the same as before the thrown start existed
        self._uniform = torch.empty(13 if c.thrown else 5, n, device=dev)
        # without a velocity for the student, the noise draws (and so the random stream) are as before the option
        self._student_velocity = c.velocity_noise is not None
        velocity_std = [float(c.velocity_noise)] * 3 if self._student_velocity else []
        self._noise = torch.empty(12 if self._student_velocity else 9, n, device=dev)
        self._noise_std = torch.tensor(
            [c.gyro_noise] * 3 + [c.gravity_noise] * 3 + [c.position_noise] * 3 + velocity_std, device=dev
        ).unsqueeze(1)
        ix, iy, iz = c.inertia
        # omega x (I omega) / I per axis = coef * omega[1, 2, 0] * omega[2, 0, 1]
        self._gyro_coef = torch.tensor([(iz - iy) / ix, (ix - iz) / iy, (iy - ix) / iz], device=dev).unsqueeze(1)
        self._moment_over_inertia = (c.moment_scale / torch.tensor(c.inertia, device=dev)).unsqueeze(1)
        rot = torch.zeros(9, 16, device=dev)  # R (row-major, 9) = rot @ vec(q q^T) + eye; vec index 4 i + j
        w, x, y, z = 0, 1, 2, 3
        terms = {
            0: [(-2, y, y), (-2, z, z)], 1: [(2, x, y), (-2, w, z)], 2: [(2, x, z), (2, w, y)],
            3: [(2, x, y), (2, w, z)], 4: [(-2, x, x), (-2, z, z)], 5: [(2, y, z), (-2, w, x)],
            6: [(2, x, z), (-2, w, y)], 7: [(2, y, z), (2, w, x)], 8: [(-2, x, x), (-2, y, y)],
        }  # fmt: skip
        for row, entries in terms.items():
            for coef, i, j in entries:
                rot[row, 4 * i + j] += coef
        self._rot_coef = rot
        self._rot_eye = torch.eye(3, device=dev).reshape(9, 1)
        self._vectors = torch.empty(3, 3, n, device=dev)  # [velocity, goal - position, (0, 0, -1)] in the world
        self._vectors[2] = 0.0
        self._vectors[2, 2] = -1.0
        self.last_episode_success = torch.zeros(n, dtype=torch.bool, device=dev)
        self.last_episode_final_distance = torch.zeros(n, device=dev)
        self._stats = torch.zeros(c.stats_window, 3, device=dev)  # per step: successes, final distances, ends
        self._stats_i = 0
        self._teacher_t = torch.empty(14, n, device=dev)  # observations, component-major
        self._policy_t = torch.empty(16 if self._student_velocity else 13, n, device=dev)
        # Reset draws (goal, mass, thrust_to_weight) are refreshed every `reset_draw_period` steps, not every step:
        # no episode can end sooner than that after a reset (the fastest way out, full thrust while inverted,
        # needs `min_episode_steps`), so every reset still gets a fresh, never reused draw; the RNG cost drops
        # by that factor (the CPU generator costs ~7 ns a number).
        self.min_episode_steps = fastest_episode_steps(c, c.spawn_height, c.spawn_lin_vel)
        self.reset_draw_period = max(1, min(8, self.min_episode_steps - 1))  # -1: margin for the Euler steps
        self._steps_since_draw = 0
        self.reset()

    # ------------------------------------------------------------------------------------------------ physics
    def _rotation(self) -> torch.Tensor:
        """Return body-to-world rotations R[i, j], shape (3, 3, num_envs), from the unit quaternions (w, x, y, z).

        R's entries are linear in the quaternion outer product q q^T: one broadcast product and one small matmul.
        """
        q = self.state[QUAT]
        outer = (q.unsqueeze(1) * q.unsqueeze(0)).view(16, -1)
        return torch.addmm(self._rot_eye, self._rot_coef, outer).view(3, 3, -1)

    def _physics_step(self, thrust_acc: torch.Tensor, alpha: torch.Tensor, dt: float) -> None:
        """Advance one semi-implicit Euler step; ``alpha`` (3, n) is the moment over the inertia (rad/s^2)."""
        s, c = self.state, self.cfg
        pos, vel, quat, omega = s[POS], s[VEL], s[QUAT], s[OMEGA]
        w, x, y, z = quat
        z_axis = torch.stack([(x * z + w * y) * 2, (y * z - w * x) * 2, 1 - (x * x + y * y) * 2])
        vel.addcmul_(z_axis, thrust_acc, value=dt)
        vel[2] -= c.gravity * dt
        pos.add_(vel, alpha=dt)
        gyro = omega.roll(-1, 0).mul_(omega.roll(-2, 0)).mul_(self._gyro_coef)
        omega.add_(alpha.sub(gyro), alpha=dt).clamp_(-c.max_angular_speed, c.max_angular_speed)
        ox, oy, oz = omega
        # q (x) (0, omega) = P1(q) ox + P2(q) oy + P3(q) oz with row permutations of q
        dq = torch.stack([-x, w, z, -y]).mul_(ox)
        dq.addcmul_(torch.stack([-y, -z, w, x]), oy).addcmul_(torch.stack([-z, y, -x, w]), oz)
        quat.add_(dq, alpha=0.5 * dt)
        quat.mul_(torch.rsqrt(quat.square().sum(0)))

    # ------------------------------------------------------------------------------------------------ VecEnv
    def _draw_reset_state(self) -> torch.Tensor:
        u = self._uniform
        torch.rand(u.shape, generator=self.gen, device=self.device, out=u)
        torch.addcmul(self._draw_low, u[:5], self._draw_span, out=self._fresh[GOAL.start : TTW.stop])
        c = self.cfg
        if c.thrown:  # a config flag, not a tensor value
            f = self._fresh
            torch.mul(u[5:8].mul(2.0).sub_(1.0), c.spawn_lin_vel, out=f[VEL])
            torch.mul(u[8:11].mul(2.0).sub_(1.0), c.spawn_ang_vel, out=f[OMEGA])
            half = u[11] * (0.5 * c.spawn_tilt)  # half the tilt angle
            axis = u[12] * (2.0 * math.pi)  # a horizontal axis
            s = torch.sin(half)
            f[6], f[7], f[8], f[9] = torch.cos(half), s * torch.cos(axis), s * torch.sin(axis), 0.0
        return self._fresh

    def reset(self) -> TensorDict:
        """Reset every env (fresh goals and physical parameters) and return the observations."""
        self.state.copy_(self._draw_reset_state())
        self._draw_reset_state()  # the drawn values are in use now; the next resets get new ones
        self._steps_since_draw = 0
        self.episode_length_buf.zero_()
        self._stats.zero_()
        self._stats_i = 0
        return self.get_observations()

    def _compute_obs(self) -> None:
        s, c = self.state, self.cfg
        vec = self._vectors
        vec[0] = s[VEL]
        torch.sub(s[GOAL], s[POS], out=vec[1])
        r = self._rotation()  # r[i, j]: body axis j in world component i; body = R^T world
        body = (r.unsqueeze(0) * vec.unsqueeze(2)).sum(1)  # [k, j] = sum_i vec[k, i] r[i, j]
        t = self._teacher_t
        t[0:3], t[3:6], t[6:9], t[9:12] = body[0], s[OMEGA], body[2], body[1]
        torch.div(s[MASS], c.mass, out=t[12:13]).sub_(1.0)
        torch.sub(s[TTW], c.thrust_to_weight, out=t[13:14])
        torch.randn(self._noise.shape, generator=self.gen, device=self.device, out=self._noise)
        p = self._policy_t
        noise, std = self._noise, self._noise_std
        torch.addcmul(t[3:12], noise[0:9], std[0:9], out=p[0:9])  # gyro, gravity, goal (body frame)
        p[9:13] = s[LAST_ACTION]
        if self._student_velocity:  # a config flag, not a tensor value
            torch.addcmul(t[0:3], noise[9:12], std[9:12], out=p[13:16])  # body linear velocity

    def _obs(self) -> TensorDict:
        return TensorDict(
            {"policy": self._policy_t.t().contiguous(), "teacher": self._teacher_t.t().contiguous()},
            batch_size=[self.num_envs],
            device=self.device,
        )

    def get_observations(self) -> TensorDict:
        """Return the current ``policy`` and ``teacher`` observations (new noise on the student's)."""
        self._compute_obs()
        return self._obs()

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Apply actions (num_envs, 4), clamped to [-1, 1]; return obs, rewards, dones (num_envs,), extras."""
        c, s = self.cfg, self.state
        a = s[LAST_ACTION]
        torch.clamp(actions.t(), -1.0, 1.0, out=a)
        # the motors are sized for the nominal mass; the randomized mass (and inertia, scaled alike) responds
        inv_ratio = torch.reciprocal(s[MASS][0]).mul_(c.mass)
        thrust_acc = (a[0] + 1.0).mul_(s[TTW][0]).mul_(inv_ratio).mul_(0.5 * c.gravity)
        alpha = a[1:4] * self._moment_over_inertia * inv_ratio
        for _ in range(c.decimation):
            self._physics_step(thrust_acc, alpha, c.physics_dt)
        self.episode_length_buf += 1
        # rewards use rotation-invariant norms: no frame change needed before the reset
        dist = (s[GOAL] - s[POS]).square_().sum(0).sqrt_()
        lin = s[VEL].square().sum(0)
        ang = s[OMEGA].square().sum(0)
        rewards = lin.mul_(c.lin_vel_reward_scale * self.step_dt)
        rewards.add_(ang, alpha=c.ang_vel_reward_scale * self.step_dt)
        rewards.add_(1.0 - torch.tanh(dist / 0.8), alpha=c.distance_to_goal_reward_scale * self.step_dt)
        z = s[2]
        died = (z < c.min_height) | (z > c.max_height)
        time_outs = self.episode_length_buf >= self.max_episode_length
        dones = died | time_outs
        success = dist < c.success_radius
        self.last_episode_success = success & dones
        self.last_episode_final_distance = dist
        # windowed episode statistics (device-only)
        d = dones.float()
        torch.stack([(success.float() * d).sum(), (dist * d).sum(), d.sum()], out=self._stats[self._stats_i])
        self._stats_i = (self._stats_i + 1) % self._stats.shape[0]
        totals = self._stats.sum(0)
        count = totals[2].clamp(min=1.0)
        extras = {
            "time_outs": time_outs,
            "log": {"Episode/success_rate": totals[0] / count, "Episode/final_distance": totals[1] / count},
        }
        # reset finished envs in one masked write over the whole state
        torch.where(dones, self._fresh, s, out=s)
        self._steps_since_draw += 1
        if self._steps_since_draw >= self.reset_draw_period:  # a host-side counter, not a tensor value
            self._draw_reset_state()
            self._steps_since_draw = 0
        self.episode_length_buf.masked_fill_(dones, 0)
        self._compute_obs()
        return self._obs(), rewards, dones, extras


def fastest_episode_steps(cfg: QuadcopterEnvCfg, spawn_height: float, spawn_lin_vel: float) -> int:
    """Return a lower bound on the env steps of an episode started at ``spawn_height`` (m).

    The fastest way out: full thrust while inverted toward the nearer height limit, starting at up to
    ``spawn_lin_vel`` (m/s) that way.
    """
    c = cfg
    ttw_max = c.thrust_to_weight_range[1] / c.mass_range[0]
    a_max = c.gravity * (1.0 + ttw_max)
    gap = min(spawn_height - c.min_height, c.max_height - spawn_height)
    v0 = spawn_lin_vel  # the fastest initial vertical speed (a thrown start)
    return int((math.sqrt(v0 * v0 + 2.0 * a_max * gap) - v0) / a_max / c.step_dt)


def nominal_hover_action(cfg: QuadcopterEnvCfg, thrust_to_weight: float | None = None) -> float:
    """Return the thrust action a0 in [-1, 1] whose thrust equals the nominal weight."""
    ttw = cfg.thrust_to_weight if thrust_to_weight is None else thrust_to_weight
    return 2.0 / ttw - 1.0
