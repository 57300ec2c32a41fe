"""The protocol and what every layer stands on.

``base`` (``GradientTransformation`` and its helpers), ``tree`` (pytree
arithmetic for moments, bias correction, placement), ``validation`` (the
argument checks whose errors name the argument) and ``combine`` (``chain``,
``named_chain``); ``tree_math`` and ``tree_access`` (the rest of
``optax.tree``'s names, exposed through ``tree``), ``numerics`` (safe norms,
incremental and periodic updates, power iteration, inverse p-th roots,
``multi_normal``) and ``projections`` (optax's projections onto sets).

May import: nothing of jaxopt_notes. Every other layer imports this one.
"""
