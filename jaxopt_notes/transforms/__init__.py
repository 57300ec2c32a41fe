"""The building blocks: small gradient transformations, one module per family.

``moments`` (EMA, trace/momentum), ``adaptive`` (RMS, sum of squares,
stddev, Adadelta), ``adam_family`` (Adam, AMSGrad, Adamax, RAdam scalings),
``scaling`` (scale, schedules, weight decay), ``clipping`` and ``masking``.

May import: :mod:`jaxopt_notes.core`.
"""
