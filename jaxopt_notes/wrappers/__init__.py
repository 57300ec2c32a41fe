"""Transforms that wrap other transforms.

``hyperparams`` (``inject_hyperparams``), ``accumulation`` (``MultiSteps``),
``param_groups`` (``partition``, ``freeze``, ``multi_transform``),
``finite`` (``apply_if_finite``), ``flatten`` and ``lookahead``.

May import: :mod:`jaxopt_notes.core`, :mod:`jaxopt_notes.transforms`,
:mod:`jaxopt_notes.schedules`, :mod:`jaxopt_notes.kernels`.
"""
