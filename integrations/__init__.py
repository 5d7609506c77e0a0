"""Optional adapters to other frameworks; each module imports its framework only when it is itself imported.

- ``dagmix.integrations.isaaclab_cfg``: Isaac Lab 3.0 configclasses for :class:`~dagmix.algorithms.MixingDistillation`.
- ``dagmix.integrations.isaaclab_cartpole``: an offline dagmix distillation task for ``isaaclab train``
  (``--external_callback dagmix.integrations.isaaclab_cartpole.register_tasks``).
"""
