r"""flax ``nnx`` integration: an ``nnx.Optimizer`` whose update is one fused step.

``import jaxopt_notes.flax`` needs flax (``pip install flax``); ``import
jaxopt_notes`` does not import it.

:class:`Optimizer` is ``flax.nnx.Optimizer`` with one change: its
:meth:`~Optimizer.update` moves the model's params with
:func:`~jaxopt_notes.apply_step` instead of ``tx.update`` followed by
``optax.apply_updates``. Where the transform has a fused kernel (see
:mod:`jaxopt_notes.kernels.fused`) that is one pass over params, grads and
state, in place when the step is jitted with the model and optimizer donated;
elsewhere (any optax transform, a GPU, several devices) it is exactly
``nnx.Optimizer``'s arithmetic. It is an ``nnx.Optimizer`` (``isinstance``
holds), keeps the same state (``step``, ``opt_state``, ``tx``, ``wrt``) and
works under ``nnx.jit``, checkpointing and ``nnx.state`` as that one does.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
from flax import nnx

from jaxopt_notes.kernels import fused as fused_lib

__all__ = ["Optimizer"]


class Optimizer(nnx.Optimizer):
  r"""``nnx.Optimizer`` whose :meth:`update` takes the fused single-pass step.

  .. math:: (w_t, s_t) = \mathrm{apply\_step}(\mathrm{tx}, g_t, s_{t-1}, w_{t-1})

  Where ``tx`` has a fused kernel this is one pass over params, grads and
  state (in place when the jitted step donates the model and the
  optimizer); otherwise ``tx.update`` + ``apply_updates``, as
  ``nnx.Optimizer``. Numbers: those of :func:`~jaxopt_notes.apply_step`
  (bitwise ``nnx.Optimizer``'s for SGD, momentum, RMSProp, AdaGrad,
  Adadelta and single-leaf Adam; for Adam on several leaves the params agree
  to a few ulp per step and the state is bitwise equal).

  Args:
    model: an ``nnx.Module``.
    tx: any gradient transformation (ours or optax's).
    wrt: which variables to train (``nnx.Param`` for the params), as for
      ``nnx.Optimizer``; required there too.
    fused: ``None`` (default) takes the kernel where it applies, ``True``
      requires it (``ValueError`` at the first update where it cannot run),
      ``False`` never takes it: :func:`~jaxopt_notes.apply_step`'s ``fused``.

  Reference: the fused step of this library (docs/guides/speed.md); flax's
  ``nnx.Optimizer``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import jaxopt_notes as jn
    >>> import jaxopt_notes.flax as jnf
    >>> model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    >>> optimizer = jnf.Optimizer(model, jn.sgd(0.05), wrt=nnx.Param)
    >>> x, y = jnp.ones((4, 3)), jnp.zeros((4, 1))
    >>> @nnx.jit
    ... def train_step(model, optimizer):
    ...   loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    ...   optimizer.update(model, grads)
    ...   return loss
    >>> losses = [float(train_step(model, optimizer)) for _ in range(20)]
    >>> losses[-1] < losses[0] / 10, int(optimizer.step[...])
    (True, 20)
  """

  def __init__(self, model, tx, *, wrt, fused: Optional[bool] = None, graph: Optional[bool] = None):
    if fused is not None and not isinstance(fused, bool):
      raise TypeError(f"`fused` must be None, True or False; got {fused!r}")
    super().__init__(model, tx, wrt=wrt, graph=graph)
    self.fused = fused

  def update(self, model, grads, /, **kwargs: Any):  # pylint: disable=arguments-differ
    """Moves ``model``'s ``wrt`` variables one step along ``grads``.

    Args:
      model: the module this optimizer was built for.
      grads: gradients from ``nnx.grad`` with the same ``wrt``.
      **kwargs: extra arguments for ``tx.update`` (taken on the reference path).

    Returns:
      The change applied to the params (new minus old), laid out like the
      ``wrt`` state: what ``nnx.Optimizer.update`` returns as ``updates``, up
      to rounding. Under ``jit`` XLA drops it when unused.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxopt_notes as jn
      >>> import jaxopt_notes.flax as jnf
      >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
      >>> optimizer = jnf.Optimizer(model, jn.sgd(0.5), wrt=nnx.Param)
      >>> grads = nnx.grad(lambda m: m(jnp.ones((1, 2))).sum())(model)
      >>> change = optimizer.update(model, grads)
      >>> print(change["bias"][...])  # -0.5 * d(sum)/d(bias)
      [-0.5]
    """
    param_arrays = nnx.as_pure(nnx.state(model, self.wrt, graph=self.graph))
    grad_arrays = nnx.as_pure(nnx.state(grads, self.wrt, graph=self.graph))
    state_arrays = nnx.as_pure(self.opt_state)
    new_params, new_state = fused_lib.apply_step(
        self.tx, grad_arrays, state_arrays, param_arrays, fused=self.fused,
        **nnx.as_pure(kwargs),
    )
    nnx.update(model, new_params)
    nnx.update(self.opt_state, nnx.state(new_state, graph=self.graph))
    self.step[...] += 1
    return jax.tree.map(lambda new, old: new - old, new_params, param_arrays)
