"""The building blocks: small gradient transformations, one module per family.

``moments`` (EMA, trace/momentum), ``adaptive`` (RMS, sum of squares,
stddev, Adadelta), ``adam_family`` (Adam, AMSGrad, Adamax, RAdam scalings),
``scaling`` (scale, schedules, weight decay), ``clipping`` and ``masking``;
from optax's other optimizers: ``sign`` (sign, Lion), ``adam_variants``
(AdaBelief, Yogi, Adan, NovoGrad), ``trust_ratio`` (LAMB/LARS trust ratio,
block norms), ``factored`` (Adafactor's factored RMS, SM3), ``step_size``
(Polyak, Rprop, DoG, optimistic gradient, gradient noise), ``lbfgs`` and the
line searches (``linesearch``, ``linesearch_backtracking``,
``linesearch_zoom``), ``gradient_ops`` (centralize, zero_nans, ...) and
``per_example_clipping``.

May import: :mod:`jaxopt_notes.core`.
"""
