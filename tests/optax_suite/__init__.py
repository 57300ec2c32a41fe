"""optax's own test files, run with jaxopt_notes' objects in place of optax's (see swap.py)."""
