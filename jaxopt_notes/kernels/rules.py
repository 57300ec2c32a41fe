"""How each optimizer maps onto a fused kernel: its scalars, its moments, and
where XLA's algebraic simplifier rewrites the reference path so that the
kernel would not be bitwise equal (there the rule refuses, and
:func:`~jaxopt_notes.apply_step` keeps the reference path).

What XLA:CPU rewrites, for hyper-parameters it sees as constants (Python or
numpy numbers, concrete arrays, a schedule whose value does not depend on the
step count), measured on the optimized HLO:

* ``c * a + d * b`` with ``c == d`` (a decay of 0.5, where ``1 - b == b``)
  becomes ``c * (a + b)``: other roundings, and ``a + b`` can overflow where
  the sum of the halves does not (Adam's ``b1`` and ``b2``, RMSProp's ``decay``,
  Adadelta's ``rho``; in bfloat16 wherever the two round to one value);
* ``m / (sqrt(v) + 0)`` becomes ``m * rsqrt(v)`` (Adam with ``eps=0``), and
  Adadelta's ``sqrt(a + 0) / sqrt(b + 0)`` is rewritten too (float32);
* a step of ``-1`` folds into a product's sign and a step of ``+1`` drops
  the product (RMSProp, AdaGrad: both; Adadelta: ``+1``, while ``-1`` has its
  own kernel variant).

A value XLA only learns at run time (a schedule of the count, a traced
hyper-parameter) is not rewritten, and the kernel computes as XLA does, 1
and 0.5 included. ``fused.py`` runs ``Rule.refuse`` at trace time.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.core import base, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.transforms import scaling

_F32 = jnp.float32
SGD_MAX = 1 << 20  # params up to which plain SGD takes the kernel by default


class Prepared(NamedTuple):
  scalars: jax.Array  # float32 vector handed to the kernel
  moments: tuple  # state trees laid out like params, read and rewritten
  rebuild: Callable[..., Any]  # new moment trees -> the new optimizer state


class Rule(NamedTuple):
  """How one optimizer maps onto one kernel."""

  kernel: str  # key of fused._TARGETS
  flag: bool  # Adam: weight decay on; momentum: Nesterov
  prepare: Callable[[Any], Prepared]  # optimizer state -> kernel inputs
  # Above this many params the default (fused=None) keeps the reference path.
  auto_max_params: Optional[int] = None
  # The kernel exists only where XLA's rsqrt is reproduced (rsqrt_steps > 0).
  needs_xla_rsqrt: bool = False
  # The state is one vector per moment over the concatenated leaves
  # (wrappers.flatten around the optimizer), not a tree like params.
  flat_state: bool = False
  dtype: Any = _F32  # of every param, grad and state leaf
  # The rule to use instead when every leaf is bfloat16.
  bf16: Optional["Rule"] = None
  # state -> why XLA would rewrite this step's arithmetic ('' when it does not).
  refuse: Optional[Callable[[Any], str]] = None


def _f32(x) -> jax.Array:
  return jnp.asarray(x, _F32)


def _rsqrt_steps() -> jax.Array:
  # fused imports this module; it is loaded by the time a step is prepared.
  from jaxopt_notes.kernels import fused  # pylint: disable=g-import-not-at-top
  return _f32(fused.fused_status().rsqrt_steps)


def _step_size(lr_tx: base.GradientTransformation, lr_state):
  """The signed step size and the learning-rate state after this step.

  Running the real learning-rate transform on a 1.0 gives exactly the factor
  it would multiply the updates by, constant or scheduled.
  """
  factor, new_state = lr_tx.update(jnp.ones((), _F32), lr_state)
  return _f32(factor), new_state


def known(fn: Callable[[], Any], dtype=_F32) -> Optional[float]:
  """``fn()`` rounded to ``dtype`` where it is known at trace time, else None.

  Evaluated eagerly where its inputs are constants (what XLA would fold):
  a constant learning rate, a schedule that ignores the count, concrete
  hyper-parameters. Anything depending on a traced value stays unknown.
  """
  with jax.ensure_compile_time_eval():
    x = fn()
    if isinstance(x, jax.core.Tracer):
      return None
    x = np.asarray(jnp.asarray(x, dtype).astype(_F32))
  return float(x) if x.shape == () else None


def _halves(name: str, decay, dtype=_F32) -> str:
  """'' unless ``1 - decay`` and ``decay`` are one constant, which XLA factors out."""
  one_minus, d = known(lambda: 1 - decay, dtype), known(lambda: decay, dtype)
  if one_minus is not None and one_minus == d:
    return (f"{name}={d}: XLA factors (1-{name})*a + {name}*b into {d}*(a+b), which the "
            "kernel does not (other roundings, and overflow of a+b)")
  return ""


def _unit_step(lr_tx, lr_state, values: tuple[float, ...] = (-1.0, 1.0)) -> str:
  """'' unless the signed step is a constant in ``values``, which XLA folds away."""
  step = known(lambda: _step_size(lr_tx, lr_state)[0])
  if step in values:
    return (f"a constant step of {step:+g} (learning rate {-step:g}): XLA folds it into the "
            "product, which the kernel does not")
  return ""


def _zero_eps(eps) -> str:
  """'' unless Adadelta's ``eps`` is a constant 0 (found in float32 and bfloat16: NaN signs differ)."""
  if known(lambda: eps) == 0.0:
    return "eps=0: XLA drops the + 0 and rewrites the ratio of roots, which the kernel does not"
  return ""


def _first(*reasons: str) -> str:
  return next((r for r in reasons if r), "")


def adam_rule(b1, b2, eps, eps_root, weight_decay, lr_tx) -> Rule:
  """Adam (and AdamW when ``weight_decay`` is not ``None``): state
  ``(ScaleByAdamState, [EmptyState,] lr_state)``."""

  def prepare(state):
    adam_state, lr_state = state[0], state[-1]
    count = tree_lib.safe_increment(adam_state.count)
    step, new_lr_state = _step_size(lr_tx, lr_state)
    scalars = jnp.stack([
        _f32(1 - b1), _f32(b1), _f32(1 - b2), _f32(b2),
        _f32(tree_lib.bias_correction_factor(b1, count)),
        _f32(tree_lib.bias_correction_factor(b2, count)),
        _f32(eps_root), _f32(eps), _f32(0.0 if weight_decay is None else weight_decay), step,
    ])

    def rebuild(mu, nu):
      return (adam_state._replace(count=count, mu=mu, nu=nu), *state[1:-1], new_lr_state)

    return Prepared(scalars, (adam_state.mu, adam_state.nu), rebuild)

  def refuse(state):
    del state
    if known(lambda: eps) == 0.0:
      return "eps=0: XLA turns m / (sqrt(v) + 0) into m * rsqrt(v), which the kernel does not"
    return _first(_halves("b1", b1), _halves("b2", b2))

  return Rule("adam", weight_decay is not None, prepare, refuse=refuse)


def momentum_rule(decay, nesterov: bool, lr_tx) -> Rule:
  """SGD with (Nesterov) momentum: state ``(TraceState, lr_state)``."""

  def prepare(state):
    trace_state, lr_state = state
    step, new_lr_state = _step_size(lr_tx, lr_state)
    return Prepared(
        jnp.stack([_f32(decay), step]), (trace_state.trace,),
        lambda t: (trace_state._replace(trace=t), new_lr_state),
    )

  return Rule("momentum", nesterov, prepare)


def sgd_rule(lr_tx) -> Rule:
  """Plain SGD: state ``(EmptyState, lr_state)``."""

  def prepare(state):
    step, new_lr_state = _step_size(lr_tx, state[1])
    return Prepared(step[None], (), lambda: (state[0], new_lr_state))

  # Plain SGD is already one loop per leaf in XLA; measured, the kernel only
  # wins where the per-call overhead dominates (small models).
  return Rule("sgd", False, prepare, auto_max_params=SGD_MAX)


def rms_rule(decay, eps, lr_tx) -> Rule:
  """RMSProp, eps inside the root: state ``(ScaleByRmsState, lr_state, EmptyState)``."""

  def prepare(state):
    rms_state, lr_state, rest = state
    step, new_lr_state = _step_size(lr_tx, lr_state)
    return Prepared(
        jnp.stack([_f32(1 - decay), _f32(decay), _f32(eps), step, _rsqrt_steps()]),
        (rms_state.nu,), lambda nu: (rms_state._replace(nu=nu), new_lr_state, rest),
    )

  return Rule("rms", False, prepare,
              refuse=lambda state: _first(_halves("decay", decay), _unit_step(lr_tx, state[1])))


def rss_rule(eps, lr_tx) -> Rule:
  """AdaGrad, eps inside the root: state ``(ScaleByRssState, lr_state)``."""

  def prepare(state):
    rss_state, lr_state = state
    step, new_lr_state = _step_size(lr_tx, lr_state)
    return Prepared(
        jnp.stack([_f32(eps), step, _rsqrt_steps()]), (rss_state.sum_of_squares,),
        lambda s: (rss_state._replace(sum_of_squares=s), new_lr_state),
    )

  return Rule("rss", False, prepare, refuse=lambda state: _unit_step(lr_tx, state[1]))


def adadelta_rule(rho, eps, weight_decay, lr_tx, bf16_step: Optional[float] = None) -> Rule:
  """Adadelta, L2 weight decay first: state ``(wd_state, ScaleByAdaDeltaState, lr_state)``.

  In float32 it runs only where XLA's rsqrt was reproduced. A step known at
  trace time to be -1 (no learning rate, a learning rate of 1, a schedule
  constantly 1), which XLA folds into the gradient's sign, selects the
  kernel's variant that does the same. ``bf16_step``: the signed step as a
  Python number, given when the learning rate is one; then, with every leaf
  bfloat16 and Python-number ``rho``, ``eps`` and ``weight_decay`` (which
  JAX rounds to bfloat16), a second kernel rounds every operation to
  bfloat16 as XLA does. Array or scheduled hyper-parameters compute in
  float32 there, and keep the reference path.
  """
  # As add_decayed_weights: only a Python 0 skips the add (an array 0 adds 0 * p).
  wd_on = not scaling.skips_weight_decay(weight_decay)

  def prepare(state):
    wd_state, ada_state, lr_state = state
    step, new_lr_state = _step_size(lr_tx, lr_state)
    neg_one = known(lambda: _step_size(lr_tx, lr_state)[0]) == -1.0
    scalars = jnp.stack([
        _f32(1 - rho), _f32(rho), _f32(eps), step, _f32(weight_decay),
        _rsqrt_steps(), _f32(1.0 if neg_one else 0.0),
    ])
    return Prepared(
        scalars, (ada_state.e_g, ada_state.e_x),
        lambda e_g, e_x: (wd_state, ada_state._replace(e_g=e_g, e_x=e_x), new_lr_state),
    )

  def prepare_bf16(state):
    wd_state, ada_state, lr_state = state
    scalars = jnp.stack([
        _f32(jnp.asarray(x, jnp.bfloat16)) for x in (1 - rho, rho, eps, bf16_step, weight_decay)
    ])
    return Prepared(
        scalars, (ada_state.e_g, ada_state.e_x),
        lambda e_g, e_x: (wd_state, ada_state._replace(e_g=e_g, e_x=e_x), lr_state),
    )

  bf16 = None
  if bf16_step is not None and all(map(validation.is_python_number, (rho, eps, weight_decay))):
    bf16 = Rule("adadelta_bf16", wd_on, prepare_bf16, dtype=jnp.bfloat16,
                refuse=lambda state: _first(_zero_eps(eps), _halves("rho", rho, jnp.bfloat16)))

  def refuse(state):
    return _first(_zero_eps(eps), _halves("rho", rho), _unit_step(lr_tx, state[2], values=(1.0,)))

  return Rule("adadelta", wd_on, prepare, needs_xla_rsqrt=True, bf16=bf16, refuse=refuse)
