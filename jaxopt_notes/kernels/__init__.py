"""The fused step: one pass over params, gradients and moments.

``fused`` is the Python side (``apply_step``, the registry that optimizers
attach their rules to, kernel selection and the reference path), ``rules``
how each optimizer's state maps onto a kernel and where XLA's arithmetic
rules a kernel out;
``step_kernels.cc`` and ``step_rules.h`` are the C++ XLA FFI kernels that
``setup.py`` compiles into ``_step_kernels``.

May import: :mod:`jaxopt_notes.core`, :mod:`jaxopt_notes.transforms`.
"""
