"""microbatch, micro_vmap, micro_grad, reshape_batch_axis: equal to the full
batch (for each accumulation type) and to optax.microbatching; a 100-step
Adam run on microbatched gradients equal to optax's; bad arguments named."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

mb = jn.microbatching
T = mb.AccumulationType
BATCH = 12


def _theirs(acc):
  """The same accumulation tree with optax's AccumulationType members."""
  return jax.tree.map(lambda a: optax.microbatching.AccumulationType[a.name], acc)


def _data(dtype="float32", seed=0):
  rng = np.random.default_rng(seed)
  w = {"a": jnp.asarray(rng.normal(size=(3,)), dtype), "b": jnp.asarray(rng.normal(), dtype)}
  x = jnp.asarray(rng.normal(size=(BATCH, 3)), dtype)
  y = jnp.asarray(rng.normal(size=(BATCH,)), dtype)
  return w, x, y


def _residual(w, x, y):
  return x @ w["a"] + w["b"] - y


def sum_loss(w, x, y):
  return jnp.sum(_residual(w, x, y) ** 2)


def mean_loss(w, x, y):
  return jnp.mean(_residual(w, x, y) ** 2)


def test_namespace_and_flat_names_are_the_same_objects():
  for name in mb.__all__:
    if name != "IndividualOutputs":
      assert getattr(jn, name) is getattr(mb, name)
  assert [t.name for t in T] == [t.name for t in optax.microbatching.AccumulationType]


# --- microbatch: the full-batch value, and optax's ------------------------------

# accumulation -> (function of (w, x, y), what it returns on the full batch)
_GRADS = {
    T.SUM: lambda w, x, y: jax.grad(sum_loss)(w, x, y),
    T.MEAN: lambda w, x, y: jax.grad(mean_loss)(w, x, y),
    T.RUNNING_MEAN: lambda w, x, y: jax.grad(mean_loss)(w, x, y),
    T.CONCAT: lambda w, x, y: jax.vmap(jax.grad(sum_loss), in_axes=(None, 0, 0))(w, x[:, None], y[:, None]),
}


class TestMicrobatchGradient(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  @pytest.mark.parametrize("size", [1, 4])
  @pytest.mark.parametrize("acc", list(T), ids=lambda t: t.name)
  def test_equals_full_batch_and_optax(self, acc, size, dtype):
    """The microbatched gradient is the full-batch one (sum, mean or per-example)."""
    with tj.precision(dtype):
      w, x, y = _data(dtype)
      fun = _GRADS[acc]
      ours = self.variant(mb.microbatch(fun, argnums=(1, 2), microbatch_size=size, accumulator=acc))(w, x, y)
      ref = optax.microbatching.microbatch(fun, argnums=(1, 2), microbatch_size=size,
                                           accumulator=_theirs(acc))(w, x, y)
      full = fun(w, x, y)
      tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
      chex.assert_trees_all_close(ours, full, **tol)
      chex.assert_trees_all_close(ours, ref, **tj.tolerance(dtype))
      chex.assert_trees_all_equal_dtypes(ours, ref)


def test_accumulator_tree_and_kwargs():
  """A pytree of accumulation types (a prefix of the output) and batch keyword arguments."""
  w, x, y = _data()

  def fun(w, x, *, y):
    return {"per_example": _residual(w, x, y), "stats": (jnp.sum(x), jnp.mean(y)), "grad": jax.grad(mean_loss)(w, x, y)}

  acc = {"per_example": T.CONCAT, "stats": (T.SUM, T.MEAN), "grad": T.RUNNING_MEAN}
  ours = mb.microbatch(fun, argnums=1, microbatch_size=3, accumulator=acc, argnames="y")(w, x, y=y)
  ref = optax.microbatching.microbatch(fun, argnums=1, microbatch_size=3, accumulator=_theirs(acc),
                                       argnames="y")(w, x, y=y)
  chex.assert_trees_all_close(ours, fun(w, x, y=y), rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(ours, ref, rtol=1e-6)


@pytest.mark.parametrize("acc", list(T), ids=lambda t: t.name)
def test_in_axes_and_argnames_are_invariant(acc):
  rng = np.random.default_rng(1)
  a = jnp.asarray(rng.normal(size=(BATCH, 4, 5)), jnp.float32)
  b = jnp.transpose(a, (1, 0, 2))
  fun = lambda a, b: jnp.einsum("bij,kbj->ik", a, b)
  run = functools.partial(mb.microbatch, fun, microbatch_size=3, accumulator=acc)
  first = run(argnums=(0, 1), in_axes=(0, 1))(a, b)
  for other in (run(argnums=(1, 0), in_axes=(1, 0))(a, b),
                run(argnums=(), argnames=("b", "a"), in_axes=(1, 0))(a=a, b=b),
                run(argnums=0, argnames="b", in_axes=(0, 1))(a, b=b)):
    chex.assert_trees_all_close(first, other, rtol=1e-6, atol=1e-6)
  ref = optax.microbatching.microbatch(fun, argnums=(0, 1), microbatch_size=3, accumulator=_theirs(acc),
                                       in_axes=(0, 1))(a, b)
  chex.assert_trees_all_close(first, ref, rtol=1e-6, atol=1e-6)


def test_microbatches_are_strided_as_optax():
  """A function that is not a sum over examples shows the split: examples i, i + n, ..."""
  x = jnp.arange(6.0)
  fun = lambda x: x[:-1] @ x[1:]
  ours = mb.microbatch(fun, argnums=0, microbatch_size=3)(x)
  assert float(ours) == 0 * 2 + 2 * 4 + 1 * 3 + 3 * 5
  assert float(ours) == float(optax.microbatching.microbatch(fun, argnums=0, microbatch_size=3)(x))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("acc", list(T), ids=lambda t: t.name)
def test_result_dtype_is_kept(acc, dtype):
  x = jnp.ones((8, 3), dtype)
  fun = lambda x: jnp.mean(x, axis=0) if acc is not T.CONCAT else 2 * x
  ours = mb.microbatch(fun, argnums=0, microbatch_size=2, accumulator=acc)(x)
  ref = optax.microbatching.microbatch(fun, argnums=0, microbatch_size=2, accumulator=_theirs(acc))(x)
  assert ours.dtype == ref.dtype == dtype
  chex.assert_trees_all_close(ours, ref)


def test_early_stop_and_traced_number_of_microbatches():
  x = jnp.arange(12.0) + 1
  out = mb.microbatch(lambda x: x, argnums=0, microbatch_size=3, accumulator=T.CONCAT, num_real_microbatches=2)(x)
  assert int(jnp.sum(out != 0)) == 6

  @jax.jit
  def partial_sum(x, steps):
    return mb.microbatch(jnp.sum, argnums=0, microbatch_size=4, num_real_microbatches=steps)(x)

  ones = jnp.ones(128)
  assert float(partial_sum(ones, 4)) == 16.0 and float(partial_sum(ones, 10)) == 40.0
  # RUNNING_MEAN averages over the microbatches that ran, MEAN over all.
  run = lambda acc: mb.microbatch(jnp.mean, argnums=0, microbatch_size=3, accumulator=acc,
                                  num_real_microbatches=2)(x)
  np.testing.assert_allclose(run(T.RUNNING_MEAN), np.mean(np.asarray(x).reshape(4, 3, order="F")[:2]))
  np.testing.assert_allclose(run(T.MEAN), 2 / 4 * run(T.RUNNING_MEAN), rtol=1e-6)


def test_optax_accumulation_types_are_accepted():
  x = jnp.arange(8.0)
  ours = mb.microbatch(lambda x: (x, jnp.mean(x)), 0, 2, _theirs((T.CONCAT, T.MEAN)))(x)
  chex.assert_trees_all_close(ours, (x, jnp.mean(x)))


def test_none_microbatch_size_returns_fun():
  fun = lambda x: x
  assert mb.microbatch(fun, argnums=0, microbatch_size=None) is fun


# --- micro_vmap and micro_grad -------------------------------------------------


def test_micro_vmap_is_vmap():
  x = jnp.arange(2 * 4 * 8.0).reshape(2, 4, 8)
  ours = mb.micro_vmap(jnp.sum, in_axes=1, microbatch_size=2)(x)
  chex.assert_trees_all_close(ours, jax.vmap(jnp.sum, in_axes=1)(x))
  chex.assert_trees_all_close(ours, optax.microbatching.micro_vmap(jnp.sum, in_axes=1, microbatch_size=2)(x))
  fun = lambda x, *, y: jnp.sum(x + y)
  y = jnp.ones((4, 8))
  chex.assert_trees_all_equal(mb.micro_vmap(fun, microbatch_size=2)(x[0], y=y), jax.vmap(fun)(x[0], y=y))
  summed = mb.micro_vmap(jnp.sum, microbatch_size=4, num_real_microbatches=3, accumulator=T.SUM)(jnp.ones(16))
  assert float(summed) == 12.0


def test_micro_vmap_int_in_axes_maps_every_argument():
  """in_axes=0 maps both positional arguments, as jax.vmap (optax's maps the first only, and fails)."""
  a, b = jnp.arange(8.0).reshape(4, 2), jnp.ones((4, 2))
  fun = lambda a, b: jnp.dot(a, b)
  chex.assert_trees_all_close(mb.micro_vmap(fun, microbatch_size=2)(a, b), jax.vmap(fun)(a, b))
  with pytest.raises(ValueError):
    optax.microbatching.micro_vmap(fun, microbatch_size=2)(a, b)
  ours = mb.micro_vmap(fun, in_axes=(0, None), microbatch_size=2)(a, b[0])
  chex.assert_trees_all_close(ours, jax.vmap(fun, in_axes=(0, None))(a, b[0]))


@pytest.mark.parametrize("keep_batch_dim", [True, False])
@pytest.mark.parametrize("size", [None, 2])
def test_micro_grad_matches_optax_and_per_example_gradients(keep_batch_dim, size):
  w, x, y = _data()

  def loss(w, x, y):
    assert x.ndim == int(keep_batch_dim) + 1
    return 0.5 * jnp.mean(_residual(w, x, y) ** 2)

  kwargs = dict(argnums=0, batch_argnums=(1, 2), keep_batch_dim=keep_batch_dim, microbatch_size=size,
                transform_fn=lambda g: (g, jax.tree.map(jnp.square, g)), metrics_fn=jn.global_norm)
  (g, g2), aux = mb.micro_grad(loss, **kwargs)(w, x, y)
  (rg, rg2), raux = optax.microbatching.micro_grad(loss, **kwargs)(w, x, y)
  chex.assert_trees_all_close((g, g2, aux.values, aux.metrics), (rg, rg2, raux.values, raux.metrics), rtol=1e-6)
  assert aux.aux is None and aux._fields == raux._fields
  per = jax.vmap(jax.grad(lambda w, x, y: 0.5 * jnp.mean(_residual(w, x, y) ** 2)), in_axes=(None, 0, 0))(
      w, x[:, None], y[:, None])
  chex.assert_trees_all_close(g, jax.tree.map(lambda p: p.sum(0), per), rtol=1e-5)
  chex.assert_trees_all_close(g2, jax.tree.map(lambda p: (p**2).sum(0), per), rtol=1e-5)
  np.testing.assert_allclose(aux.metrics, jax.vmap(jn.global_norm)(per), rtol=1e-5)


def test_micro_grad_clipping_is_per_example_clipping():
  """transform_fn clipping each example, summed: per_example_global_norm_clip's sum."""
  w, x, y = _data()
  clip = lambda g: jax.tree.map(lambda t: t * jnp.minimum(1.0, 0.3 / jn.global_norm(g)), g)
  ours, _ = mb.micro_grad(sum_loss, batch_argnums=(1, 2), microbatch_size=3, transform_fn=clip)(w, x, y)
  per = jax.vmap(jax.grad(sum_loss), in_axes=(None, 0, 0))(w, x[:, None], y[:, None])
  ref, _ = jn.per_example_global_norm_clip(per, 0.3)
  chex.assert_trees_all_close(ours, ref, rtol=1e-5)


def test_micro_grad_has_aux_trailing_args_and_early_stop():
  w, x, y = _data()

  def loss(w, x, y, weight):
    r = _residual(w, x, y)
    return weight * jnp.sum(r**2), {"abs": jnp.abs(r)}

  grads, aux = mb.micro_grad(loss, has_aux=True, batch_argnums=(1, 2), microbatch_size=4)(w, x, y, 2.0)
  chex.assert_trees_all_close(grads, jax.grad(lambda w: loss(w, x, y, 2.0)[0])(w), rtol=1e-5)
  np.testing.assert_allclose(aux.aux["abs"][:, 0], jnp.abs(_residual(w, x, y)), rtol=1e-6)
  result, _ = mb.micro_grad(lambda c, x: c * x.sum(), microbatch_size=4, num_real_microbatches=3)(1.0, jnp.ones(16))
  assert float(result) == 12.0


# --- reshape_batch_axis ----------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_reshape_batch_axis_matches_optax(axis):
  x = jnp.arange(2 * 12 * 3.0).reshape(2, 12, 3) if axis == 1 else jnp.arange(12 * 5.0).reshape(12, 5)
  ours = mb.reshape_batch_axis({"x": x}, 4, axis)
  chex.assert_trees_all_equal(ours, optax.microbatching.reshape_batch_axis({"x": x}, 4, axis))
  assert ours["x"].shape[axis:axis + 2] == (3, 4)


def test_reshape_batch_axis_on_an_explicit_mesh():
  """On a mesh with explicit axes the result says where it lives; optax 0.2.8's reshape fails.

  (optax compares version strings, ``"0.10" < "0.7"``, so it never takes its sharded path.)
  """
  mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
  with jax.set_mesh(mesh):
    x = jax.device_put(jnp.arange(8.0).reshape(4, 2), jax.sharding.NamedSharding(mesh, jax.P("data")))
    out = mb.reshape_batch_axis(x, 2)
    assert jax.typeof(out).sharding.spec == jax.P(None, "data", None)
    np.testing.assert_array_equal(out, np.arange(8.0).reshape(4, 2).reshape(2, 2, 2, order="F"))
    concat = mb.microbatch(lambda x: 2 * x, argnums=0, microbatch_size=2, accumulator=T.CONCAT)(x)
    np.testing.assert_array_equal(concat, 2 * np.arange(8.0).reshape(4, 2))
    with pytest.raises(Exception, match="out_sharding"):
      optax.microbatching.reshape_batch_axis(x, 2)


# --- a training run on microbatched gradients --------------------------------------


class TestAdamOnMicrobatchedGradients(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("dtype", tj.DTYPES)
  def test_matches_optax(self, dtype):
    """100 Adam steps on micro_grad MEAN gradients, ours against optax's, params every step."""
    with tj.precision(dtype):
      rng = np.random.default_rng(2)
      xs = jnp.asarray(rng.normal(size=(tj.STEPS, BATCH, 3)), dtype)
      ys = jnp.asarray(rng.normal(size=(tj.STEPS, BATCH)), dtype)
      start, _, _ = _data(dtype)

      def run(lib, micro, variant):
        grad_fn = micro.micro_grad(mean_loss, batch_argnums=(1, 2), microbatch_size=4,
                                   accumulator=micro.AccumulationType.MEAN)
        tx = lib.adam(0.05)
        # The gradients are always compiled (an eager fori_loop would be traced at every
        # step); the variant applies to the optimizer step.
        grads = jax.jit(lambda p, x, y: grad_fn(p, x, y)[0])

        def step(p, s, g):
          u, s = tx.update(g, s, p)
          return lib.apply_updates(p, u), s

        step = variant(step)
        p, s, history = start, tx.init(start), []
        for t in range(tj.STEPS):
          p, s = step(p, s, grads(p, xs[t], ys[t]))
          history.append(p)
        return history, s

      ours, s = run(jn, mb, self.variant)
      ref, r = run(optax, optax.microbatching, jax.jit)
      tol = tj.tolerance(dtype)
      if not tj.is_jit(self.variant) and dtype == "float32":
        tol["rtol"] = 1e-5  # eager against compiled rounding
      chex.assert_trees_all_close(ours, ref, **tol)
      tj.assert_states_close(s, r, **tol)


# --- bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: mb.microbatch(jnp.sum, 0, 0), ValueError, "microbatch_size"),
        (lambda: mb.microbatch(jnp.sum, 0, 2.5), TypeError, "microbatch_size"),
        (lambda: mb.microbatch(jnp.sum, 0, True), TypeError, "microbatch_size"),
        (lambda: mb.microbatch("sum", 0, 2), TypeError, "fun"),
        (lambda: mb.microbatch(jnp.sum, 0, 2, accumulator="sum"), TypeError, "accumulator"),
        (lambda: mb.microbatch(jnp.sum, (0, 1), 2, in_axes=(0,)), ValueError, "in_axes"),
        (lambda: mb.microbatch(jnp.sum, 0, 2, num_real_microbatches=-1), ValueError, "num_real_microbatches"),
        (lambda: mb.microbatch(jnp.sum, 0, 5)(jnp.ones(12)), ValueError, "microbatch_size"),
        (lambda: mb.microbatch(lambda a, b: a, (0, 1), 2)(jnp.ones(4), jnp.ones(6)), ValueError, "batch size"),
        (lambda: mb.microbatch(jnp.sum, 0, 2, T.MEAN)(jnp.ones(4, jnp.int32)), ValueError, "floating"),
        (lambda: mb.micro_vmap(jnp.sum, out_axes=1), NotImplementedError, "out_axes"),
        (lambda: mb.micro_vmap(jnp.sum, vmap_fn=3), TypeError, "vmap_fn"),
        (lambda: mb.micro_grad(jnp.sum, has_aux="no"), TypeError, "has_aux"),
        (lambda: mb.micro_grad(jnp.sum, keep_batch_dim=None), TypeError, "keep_batch_dim"),
        (lambda: mb.micro_grad(jnp.sum, transform_fn=1), TypeError, "transform_fn"),
        (lambda: mb.micro_grad(jnp.sum, metrics_fn=1), TypeError, "metrics_fn"),
        (lambda: mb.micro_grad(jnp.sum, batch_argnums=()), ValueError, "batch_argnums"),
        (lambda: mb.reshape_batch_axis(jnp.ones(6), 4), ValueError, "microbatch_size"),
        (lambda: mb.reshape_batch_axis(jnp.ones(6), 3, axis=-1), ValueError, "axis"),
    ],
)
def test_bad_arguments_are_named(call, error, name):
  with pytest.raises(error, match=name):
    call()


def test_custom_accumulator():
  """A user Accumulator: the running maximum of the microbatch results."""
  running_max = mb.Accumulator(
      init=lambda s: jax.tree.map(lambda t: jnp.full(t.shape, -jnp.inf, t.dtype), s),
      update=lambda c, v, i: jax.tree.map(jnp.maximum, c, v),
      finalize=lambda c: c,
      aggregate=lambda v: jax.tree.map(lambda t: t.max(0), v),
  )
  x = jnp.asarray(np.random.default_rng(0).normal(size=(12,)), jnp.float32)
  assert float(mb.microbatch(jnp.max, 0, 3, running_max)(x)) == float(jnp.max(x))
  chex.assert_trees_all_close(mb.micro_vmap(lambda t: t, microbatch_size=3, accumulator=running_max)(x), jnp.max(x))
