"""A training loop: epochs of jit-compiled steps, history, early stopping.

:func:`fit` is the notes' gradient-descent loop (note 000,
``for t in range(num_steps): dw = grad(L, w); w -= lr * dw``) run over
minibatches and epochs (notes 002 and 004), with note 002/003's early
stopping on a validation loss. It works with any ``(init, update)``
optimizer, ours or optax's.

How it runs:

* one epoch is one compiled call: ``lax.scan`` over the epoch's batches,
  each gathered on the device from the epoch's permutation (see
  :mod:`jaxopt_notes.training.data`), so the host is touched once per epoch, to log;
* params and optimizer state are donated to that call (``donate_argnums``):
  XLA writes the new values into the old buffers instead of allocating a
  second copy of the model and its moments every step. ``fit`` therefore
  copies the params it is given (the caller's arrays stay valid) and hands
  callbacks copies too;
* the step is :func:`~jaxopt_notes.apply_step`: for the optimizers that have
  one (see :mod:`jaxopt_notes.kernels.fused`), a single fused in-place pass over
  params, grads and state on the CPU, working into the donated buffers;
* ``flat_params=True`` trains one flat vector instead of the params' tree
  (``jax.flatten_util.ravel_pytree``): the optimizer step then touches three
  or four buffers instead of hundreds, which is what makes models of many
  small leaves fast;
* every update receives the step's loss as the extra arguments ``value=``,
  ``grad=`` and ``value_fn=`` (``GradientTransformationExtraArgs``), so
  :func:`reduce_on_plateau`, :func:`newton` and ``optax.lbfgs`` work inside
  ``fit``; transforms that take no extra arguments never see them.
"""

from __future__ import annotations

import collections.abc
import math
from typing import Any, Callable, Optional, Sequence

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.core import validation as checks
from jaxopt_notes.kernels import fused as fused_lib
from jaxopt_notes.training import data as data_lib

__all__ = ["fit", "injected_learning_rate"]

LossFn = Callable[[base.Params, Any], jax.Array]
Callback = Callable[[int, base.Params, base.OptState, dict], Optional[bool]]


def _has_injected_learning_rate(node: Any) -> bool:
  hyperparams = getattr(node, "hyperparams", None)
  return isinstance(hyperparams, collections.abc.Mapping) and "learning_rate" in hyperparams


def injected_learning_rate(opt_state: base.OptState) -> Optional[jax.Array]:
  """The learning rate held in ``opt_state``, or ``None``.

  Finds the first node, however deeply nested (inside a ``chain``, a
  ``masked`` or a ``lookahead`` state), with a ``hyperparams`` mapping that
  has a ``"learning_rate"`` entry: the state of ``optax.inject_hyperparams``
  and of any transform that follows its layout. After an update that entry is
  the learning rate the update used.
  """
  for node in jax.tree.leaves(opt_state, is_leaf=_has_injected_learning_rate):
    if _has_injected_learning_rate(node):
      return jnp.asarray(node.hyperparams["learning_rate"])
  return None


def _fresh_copy(tree: Any) -> Any:
  # New buffers, so that donating them never deletes arrays someone else holds.
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _check_args(loss_fn, optimizer, epochs, patience, min_delta, validation, callbacks, schedule):
  checks.check_callable("loss_fn", loss_fn)
  tx = base.with_extra_args_support(base.as_transform(optimizer, "optimizer"))
  checks.check_int("epochs", epochs)
  if patience is not None:
    checks.check_int("patience", patience, meaning=" (epochs without improvement) or None")
    if validation is None:
      raise ValueError(
          "early stopping (`patience`) watches the validation loss: pass "
          "`validation=` (a held-out data pytree), or drop `patience`"
      )
  checks.check_non_negative("min_delta", min_delta)
  if callable(callbacks):
    raise TypeError("`callbacks` is a sequence of callables; wrap a single callback as (callback,)")
  callbacks = tuple(callbacks)
  for i, cb in enumerate(callbacks):
    checks.check_callable(f"callbacks[{i}]", cb)
  if schedule is not None:
    checks.check_callable("schedule", schedule)
  return tx, callbacks


def _make_step(loss_fn: LossFn, tx: base.GradientTransformationExtraArgs, fused: Optional[bool]):
  """One update on one batch; also returns the loss and the injected lr."""

  def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    params, opt_state = fused_lib.apply_step(
        tx, grads, opt_state, params, fused=fused,
        value=loss, grad=grads, value_fn=lambda p: loss_fn(p, batch),
    )
    logs = {"loss": loss}
    lr = injected_learning_rate(opt_state)
    if lr is not None:
      logs["learning_rate"] = lr
    return params, opt_state, logs

  return step


def _make_epoch(step, n: int, b: int, drop_remainder: bool):
  """All the steps of one epoch as one function, to be jit-compiled."""
  full, rest = divmod(n, b)
  take = lambda data, idx: jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)

  def epoch(params, opt_state, data, order):
    if b >= n:
      params, opt_state, logs = step(params, opt_state, data)
      return params, opt_state, jax.tree.map(lambda v: v[None], logs)

    def body(carry, idx):
      params, opt_state, logs = step(*carry, take(data, idx))
      return (params, opt_state), logs

    (params, opt_state), logs = jax.lax.scan(
        body, (params, opt_state), order[: full * b].reshape(full, b)
    )
    if rest and not drop_remainder:
      params, opt_state, last = step(params, opt_state, take(data, order[full * b:]))
      logs = jax.tree.map(lambda a, v: jnp.concatenate([a, v[None]]), logs, last)
    return params, opt_state, logs

  return epoch


def fit(
    loss_fn: LossFn,
    params: base.Params,
    optimizer: base.GradientTransformation,
    data: Any,
    *,
    epochs: int,
    batch_size: Optional[int],
    key: Optional[jax.Array],
    validation: Any = None,
    patience: Optional[int] = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    shuffle: Optional[str] = "epoch",
    drop_remainder: bool = False,
    schedule: Optional[base.Schedule] = None,
    scan: bool = True,
    fused: Optional[bool] = None,
    flat_params: bool = False,
) -> tuple[base.Params, dict[str, list[float]]]:
  r"""Minimizes ``loss_fn`` over ``data`` with ``optimizer``, epoch by epoch.

  .. math::
     \text{for each epoch, each batch } B:\quad
     u, s \leftarrow \mathrm{update}(\nabla_w L(w; B), s, w),\qquad w \leftarrow w + u

  The notes' loop (note 000) over minibatches and epochs (notes 002 and
  004; batch sizes as in :func:`minibatches`: ``None`` full batch, ``1``
  stochastic, ``k`` minibatch), with early stopping (notes 002 and 003: keep
  the parameters with the best validation loss and stop once it has not
  improved for ``patience`` epochs).

  An epoch takes :func:`steps_per_epoch` updates: ``ceil(n / b)``, or
  ``floor(n / b)`` with ``drop_remainder``. Each update gets ``value=loss``,
  ``grad=`` and ``value_fn=`` as extra arguments (dropped by transforms that
  take none), so :func:`reduce_on_plateau` and :func:`newton` work here.

  History (lists of Python floats):

  * ``"loss"``: the batch loss of every step, at the params before the step;
  * ``"epoch_loss"``: per epoch, the mean of that epoch's step losses;
  * ``"val_loss"``: per epoch, ``loss_fn(params, validation)`` after the
    epoch (only with ``validation``);
  * ``"learning_rate"``: per step, the learning rate the step used, when it
    can be known: read from the optimizer state when the optimizer was built
    with ``optax.inject_hyperparams`` (any state, however nested, with a
    ``hyperparams`` mapping holding ``"learning_rate"``); otherwise
    ``schedule(t)`` for step ``t = 0, 1, ...`` when ``schedule`` is given.
    A schedule passed straight to an optimizer (``adam(schedule)``) lives in
    a closure that ``fit`` cannot see, so pass it again as ``schedule=`` to
    record it. Scalings applied after the learning rate (e.g. by
    :func:`reduce_on_plateau`) are not included.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``, jit-safe; ``batch`` is a
      pytree shaped like ``data`` with ``b`` examples.
    params: initial parameters (not modified: ``fit`` trains a copy).
    optimizer: any ``GradientTransformation``, ours or optax's.
    data: a pytree of arrays with a common leading axis of ``n`` examples;
      put on the device once.
    epochs: maximum number of passes over ``data``.
    batch_size: ``None`` (full batch), ``1`` (stochastic) or ``k``.
    key: ``jax.random`` key for the batch order; the run is a pure function
      of it (bitwise reproducible). May be ``None`` with ``shuffle=None``.
    validation: a held-out data pytree, scored with ``loss_fn`` after each
      epoch (default ``None``).
    patience: stop after this many epochs in a row without the validation
      loss improving by more than ``min_delta`` (default ``None``: never).
      Needs ``validation``.
    min_delta: the improvement that counts (default 0.0, absolute).
    restore_best: with ``patience``, return the params of the best epoch
      rather than the last (default ``True``).
    progress: show a tqdm bar, one tick per epoch, with the losses (default
      ``True``); ``False`` prints nothing.
    callbacks: called after every epoch as
      ``callback(epoch, params, opt_state, history)`` (``epoch`` from 0;
      ``params`` and ``opt_state`` are copies the callback may keep); one
      returning ``True`` stops training after that epoch.
    shuffle: ``"epoch"`` (default), ``"once"`` or ``None``, as in
      :func:`minibatches`.
    drop_remainder: drop each epoch's short last batch (default ``False``).
    schedule: the learning-rate schedule to record in
      ``history["learning_rate"]`` (default ``None``).
    scan: run each epoch as one compiled ``lax.scan`` (default ``True``);
      ``False`` makes one compiled call per batch, fed by
      :func:`minibatches` (same batches, a few ulps apart from the scanned
      run, as XLA fuses the loop body differently).
    fused: passed to :func:`~jaxopt_notes.apply_step`: ``None`` (default)
      uses the fused kernel where it applies, ``False`` never.
    flat_params: train ``ravel_pytree(params)``, one vector, and unravel it
      for ``loss_fn``, callbacks and the result (default ``False``). All
      leaves must share one dtype. The optimizer state (also what callbacks
      receive) is then laid out over that vector.

  Returns:
    ``(params, history)``.

  Raises:
    ValueError: for ``patience`` without ``validation``, and the argument
      errors of :func:`minibatches`.

  Reference: Goodfellow, Bengio & Courville, *Deep Learning*, sec. 7.8
  (early stopping) and 8.1.3 (minibatch algorithms).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> x = jnp.linspace(-1.0, 1.0, 8)
    >>> data = {"x": x, "y": 2.0 * x}
    >>> def loss(p, batch):
    ...   return jnp.mean((p["w"] * batch["x"] - batch["y"]) ** 2)
    >>> params, history = jn.fit(loss, {"w": jnp.zeros([])}, jn.sgd(0.5), data, epochs=2, batch_size=4,
    ...                          key=None, shuffle=None, progress=False)
    >>> len(history["loss"]), [round(v, 4) for v in history["epoch_loss"]], round(float(params["w"]), 4)
    (4, [1.137, 0.1212], 1.7868)
  """
  tx, callbacks = _check_args(
      loss_fn, optimizer, epochs, patience, min_delta, validation, callbacks, schedule
  )
  n = data_lib.num_examples(data)
  b = data_lib.check_batch_size(batch_size, n, drop_remainder)
  data_lib.check_shuffle(shuffle, key)
  if validation is not None:
    data_lib.num_examples(validation, "validation")
    validation = jax.device_put(validation)
  tree_lib.check_params_tree(params)
  data = jax.device_put(data)
  steps = data_lib.steps_per_epoch(n, b, drop_remainder)

  checks.check_flags(flat_params=flat_params)
  unravel = lambda w: w  # pylint: disable=unnecessary-lambda-assignment
  if flat_params:
    params, unravel, loss_fn = _flatten_problem(params, loss_fn)
  params = _fresh_copy(params)
  opt_state = _fresh_copy(tx.init(params))
  step = _make_step(loss_fn, tx, fused)
  if scan:
    run_epoch = jax.jit(_make_epoch(step, n, b, drop_remainder), donate_argnums=(0, 1))
  else:
    run_step = jax.jit(step, donate_argnums=(0, 1))
    batches = data_lib.minibatches(
        data, b, key=key, shuffle=shuffle, drop_remainder=drop_remainder, epochs=epochs
    )
  val_loss_fn = jax.jit(loss_fn)
  schedule_values = None if schedule is None else jax.jit(jax.vmap(schedule))

  history: dict[str, list[float]] = {"loss": [], "epoch_loss": []}
  if validation is not None:
    history["val_loss"] = []
  best_loss, best_params, waited = math.inf, None, 0

  bar = None
  if progress:
    # Imported here so that progress=False needs no tqdm installed.
    from tqdm.auto import tqdm
    bar = tqdm(total=epochs, desc="fit", unit="epoch")
  try:
    for epoch in range(epochs):
      if scan:
        # A full batch is used in stored order, so it needs no permutation.
        order = data_lib.epoch_order(key, epoch, n, shuffle) if b < n else jnp.zeros(0, jnp.int32)
        params, opt_state, logs = run_epoch(params, opt_state, data, order)
      else:
        per_step = []
        for _ in range(steps):
          params, opt_state, out = run_step(params, opt_state, next(batches))
          per_step.append(out)
        logs = jax.tree.map(lambda *v: jnp.stack(v), *per_step)
      logs = jax.device_get(logs)

      first = len(history["loss"])
      history["loss"].extend(np.asarray(logs["loss"], np.float64).tolist())
      history["epoch_loss"].append(float(np.mean(logs["loss"])))
      rates = logs.get("learning_rate")
      if rates is None and schedule_values is not None:
        rates = schedule_values(jnp.arange(first, first + steps))
      if rates is not None:
        history.setdefault("learning_rate", []).extend(np.asarray(rates, np.float64).tolist())

      stop = False
      postfix = {"loss": f"{history['epoch_loss'][-1]:.4g}"}
      if validation is not None:
        val = float(val_loss_fn(params, validation))
        history["val_loss"].append(val)
        postfix["val_loss"] = f"{val:.4g}"
        if patience is not None:
          if val < best_loss - min_delta:
            best_loss, waited = val, 0
            if restore_best:
              best_params = _fresh_copy(params)
          else:
            waited += 1
            stop = waited >= patience

      if callbacks:
        requests = [
            cb(epoch, unravel(_fresh_copy(params)), _fresh_copy(opt_state), history)
            for cb in callbacks
        ]
        stop = stop or any(bool(r) for r in requests if r is not None)
      if bar is not None:
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
      if stop:
        break
  finally:
    if bar is not None:
      bar.close()

  if patience is not None and restore_best and best_params is not None:
    params = best_params
  return unravel(params), history


def _flatten_problem(params, loss_fn):
  """One flat vector for ``params``, its inverse, and the loss over the vector."""
  dtypes = {jnp.result_type(x) for x in jax.tree.leaves(params)}
  if len(dtypes) > 1:
    raise ValueError(
        "flat_params=True needs params of one dtype (a flat vector has one); got "
        f"{sorted(str(d) for d in dtypes)}"
    )
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  return flat, unravel, lambda w, batch: loss_fn(unravel(w), batch)
