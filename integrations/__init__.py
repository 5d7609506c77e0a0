"""Optional adapters to other simulators and training stacks (``import dagmix`` never needs them).

Each module imports its framework only when it is itself imported.

- ``dagmix.integrations.isaaclab_cfg``: Isaac Lab 3.0 configclasses for :class:`~dagmix.algorithms.MixingDistillation`.
- ``dagmix.integrations.isaaclab_cartpole``: an offline dagmix distillation task for ``isaaclab train``
  (``--external_callback dagmix.integrations.isaaclab_cartpole.register_tasks``).
- ``dagmix.integrations.mjlab_tasks`` / ``mjlab_train``: dagmix distillation variants of mjlab tasks.
- ``dagmix.integrations.gymnasium_env`` / ``callable_teacher``: gymnasium vector envs as rsl_rl VecEnvs, and any
  callable as the teacher; ``gymnasium_pendulum`` is the example.
- ``dagmix.integrations.train_isaaclab23``: Isaac Lab 2.3's train script for rsl-rl-lib 3.x users.
"""
