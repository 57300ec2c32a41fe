"""The fused step: one pass over params, gradients and moments.

``fused`` is the Python side (the rule registry that optimizers attach to
their chains, ``apply_step``, kernel selection and the reference path);
``step_kernels.cc`` and ``step_rules.h`` are the C++ XLA FFI kernels that
``setup.py`` compiles into ``_step_kernels``.

May import: :mod:`jaxopt_notes.core`, :mod:`jaxopt_notes.transforms`.
"""
