"""The protocol and what every layer stands on.

``base`` (``GradientTransformation`` and its helpers), ``tree`` (pytree
arithmetic for moments, bias correction, placement), ``validation`` (the
argument checks whose errors name the argument) and ``combine`` (``chain``,
``named_chain``).

May import: nothing of jaxopt_notes. Every other layer imports this one.
"""
