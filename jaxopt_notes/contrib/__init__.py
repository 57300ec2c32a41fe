"""optax.contrib's optimizers, with optax.contrib's names, signatures and numbers.

``import jaxopt_notes as jn`` then ``jn.contrib.NAME``. Each is equal to
``optax.contrib.NAME`` of optax 0.2.8 on the trajectory tests (``tests/contrib``),
except where its docstring names a deliberate difference.
"""

from jaxopt_notes.training.plateau import ReduceLROnPlateauState, reduce_on_plateau

__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]
