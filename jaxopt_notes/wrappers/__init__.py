"""Transforms that wrap other transforms.

``hyperparams`` (``inject_hyperparams``), ``accumulation`` (``MultiSteps``),
``param_groups`` (``partition``, ``freeze``, ``multi_transform``),
``finite`` (``apply_if_finite``), ``flatten``, ``lookahead``, ``periodic``
(``apply_every``), ``conditional`` (``conditionally_mask``/``_transform``),
``monitoring`` (``monitor``, ``snapshot``, ``measure_with_ema``),
``microbatching`` (``microbatch``, ``micro_vmap``, ``micro_grad``) and
``averaging`` (``ema_params``, ``swa_params``, ``averaged_params``: an EMA or
SWA of the params kept in the optimizer state).

May import: :mod:`jaxopt_notes.core`, :mod:`jaxopt_notes.transforms`,
:mod:`jaxopt_notes.schedules`, :mod:`jaxopt_notes.kernels`.
"""
