"""Many devices: optimizer state placed like the params, or sharded ZeRO-1 style.

``sharding`` (``shard_state``, ``state_shardings``, ``zero1_spec``,
``bytes_per_device``).

May import: :mod:`jaxopt_notes.core` and the optimizer layers below it
(transforms, schedules, kernels, wrappers, optimizers).
"""
