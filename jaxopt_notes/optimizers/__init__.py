"""The optimizers, one module per family, each a visible ``chain`` of blocks.

Signatures, defaults and numbers are optax 0.2.x's (``optax.sgd``,
``optax.adam``, ...), so these are drop-in replacements. Extra keyword-only
arguments give the notes' own forms; their defaults keep optax's behaviour.
The one deliberate difference: :func:`~jaxopt_notes.adadelta` with
``learning_rate=None`` descends (optax's climbs, see its docstring).

A new optimizer gets a module here named after it (or its family).

May import: :mod:`jaxopt_notes.core`, :mod:`jaxopt_notes.transforms`,
:mod:`jaxopt_notes.schedules`, :mod:`jaxopt_notes.kernels`,
:mod:`jaxopt_notes.wrappers`.
"""
