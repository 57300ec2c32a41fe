"""Training helpers the notes teach: the loop, data, and the tools around it.

``loop`` (``fit``), ``data`` (minibatches, epochs), ``plateau``
(``reduce_on_plateau``), ``gradcheck`` (numeric vs analytic gradients),
``second_order`` (Newton's method) and ``checkpoint`` (orbax save/restore).

May import: every layer below it (core to parallel).
"""
