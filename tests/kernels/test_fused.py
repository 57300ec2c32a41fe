"""apply_step and its fused CPU kernels: the same step as tx.update +
apply_updates (bitwise for SGD, momentum, RMSProp, AdaGrad and one-leaf Adam;
to a few ulp where XLA rewrites Adam's division), the kernel really in the compiled program
where it applies and absent where it does not, in place under donation, and
transparent to grad, vmap, extra arguments and eager calls."""

import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests import _trajectory as tj

STEPS = 50
# One step from the same inputs, and STEPS steps on each path's own trajectory.
ONE_STEP_TOL = dict(rtol=2e-6, atol=1e-7)
TRAJECTORY_TOL = dict(rtol=1e-5, atol=1e-6)

needs_kernel = pytest.mark.skipif(
    not jn.fused_status().available,
    reason=f"fused kernels not built: {jn.fused_status().reason}",
)

# id -> (optimizer factory, kernel it should run, bitwise equal on many leaves)
_CASES = {
    "sgd": (lambda: jn.sgd(1e-2), "sgd", True),
    "sgd-momentum": (lambda: jn.sgd(1e-2, 0.9), "momentum", True),
    "sgd-nesterov": (lambda: jn.sgd(1e-2, 0.9, nesterov=True), "momentum", True),
    "sgd-momentum-expdecay": (
        lambda: jn.sgd(jn.exponential_decay(1e-2, 10, 0.9), 0.9), "momentum", True
    ),
    "adam": (lambda: jn.adam(1e-2), "adam", False),
    "adamw": (lambda: jn.adamw(1e-2, weight_decay=1e-2), "adam", False),
    "adam-cosine": (lambda: jn.adam(jn.cosine_decay_schedule(1e-2, 100)), "adam", False),
    # Bitwise where the load-time check found XLA's rsqrt variant on this CPU.
    "rmsprop": (lambda: jn.rmsprop(1e-2), "rms", jn.fused_status().rsqrt_steps > 0),
    "adagrad": (lambda: jn.adagrad(1e-2), "rss", jn.fused_status().rsqrt_steps > 0),
    # Adadelta's kernel exists only where XLA's rsqrt is reproduced, and is then bitwise.
    "adadelta": (lambda: jn.adadelta(), "adadelta", True),
    "adadelta-lr-wd": (lambda: jn.adadelta(0.5, weight_decay=1e-2), "adadelta", True),
    "adadelta-schedule": (lambda: jn.adadelta(jn.exponential_decay(1.0, 10, 0.9)), "adadelta", True),
}


@pytest.fixture(autouse=True)
def _default_fusing(monkeypatch):
  """Tests start from the default (fused where possible), whatever the caller's environment."""
  monkeypatch.delenv("JAXOPT_NOTES_FUSED", raising=False)


def _params(seed=0, big=300_000):
  """Nested params: a matrix, a list with a vector and a None, one big vector.

  The big leaf alone passes the kernel's threading threshold (2**18).
  """
  rng = np.random.default_rng(seed)
  f32 = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  return {"w": f32(37, 19), "layers": [f32(5003), None], "big": f32(big)}


def _grads(like, step, seed=0):
  """Random grads shaped like ``like``; magnitude 10**k, k cycling -6..1."""
  rng = np.random.default_rng((seed, step))
  scale = 10.0 ** ((step % 8) - 6)
  return jax.tree.map(
      lambda x: jnp.asarray(rng.normal(size=x.shape) * scale, jnp.float32), like
  )


def _bits(x):
  """The array's bit pattern (floats viewed as unsigned ints of the same size).

  Every NaN maps to one pattern: where two NaNs meet in an addition the result's sign bit
  is the first operand's, and XLA may swap the operands of a commutative op, so the sign
  of a NaN is not part of the "bitwise" contract (NaN stays NaN on both paths).
  """
  x = np.asarray(x)
  if np.issubdtype(x.dtype, np.floating) or x.dtype == jnp.bfloat16:
    bits = x.view(f"u{x.dtype.itemsize}")
    return np.where(np.isnan(x.astype(np.float32)), np.iinfo(bits.dtype).max, bits)
  return x


def _assert_bitwise(actual, expected):
  """Same structure, dtypes and bit patterns, leaf by leaf."""
  chex.assert_trees_all_equal_structs(actual, expected)
  chex.assert_trees_all_equal_dtypes(actual, expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(_bits(a), _bits(e))


def _int_leaves(tree):
  return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.integer)]


def _step_fn(tx, **kwargs):
  return lambda g, s, p: jn.apply_step(tx, g, s, p, **kwargs)


def _hlo(tx, grads, state, params, **kwargs):
  """The lowered (StableHLO) text of one jitted apply_step."""
  return jax.jit(_step_fn(tx, **kwargs)).lower(grads, state, params).as_text()


def _peak_of(compiled) -> float:
  """XLA's peak memory of a compiled step over its arguments (params, state,
  grads): inputs, outputs not aliased to a donated input, and temporaries."""
  mem = compiled.memory_analysis()
  live = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
          + mem.temp_size_in_bytes)
  return live / mem.argument_size_in_bytes


def _donated_peak(tx, params, state, fused):
  """``_peak_of`` one donated apply_step, with grads shaped like params."""
  step = lambda p, s, g: jn.apply_step(tx, g, s, p, fused=fused)  # pylint: disable=unnecessary-lambda-assignment
  return _peak_of(jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile())


def _grads_through_step(tx, params, state, grads):
  """d/dparams and d/dgrads of sum(new params ** 2) after one step: the
  default (fused) path's, checked against the reference path's (the
  custom_jvp), finite, and nonzero in the grads."""

  def loss(p, g, fused):
    new_params, _ = jn.apply_step(tx, g, state, p, fused=fused)
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(new_params))

  d = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
  got, want = d(params, grads, None), d(params, grads, False)
  chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)
  chex.assert_tree_all_finite(got)
  assert any(np.any(np.asarray(x) != 0) for x in jax.tree.leaves(got[1]))
  return got


def test_kernel_built_when_library_present():
  """If pip built the kernel library, it loads: CI cannot silently skip every kernel test.

  The library is looked for next to the imported package and in the installed
  distribution's files (a source checkout on sys.path ahead of site-packages).
  """
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  package = pathlib.Path(jn.__file__).parent / "kernels"
  built = sorted(package.glob("_step_kernels*.so"))
  files = [f for d in importlib.metadata.distributions(name="jaxopt_notes") for f in d.files or []]
  built += [pathlib.Path(str(f.locate())) for f in files if f.name.startswith("_step_kernels.")]
  built = [b for b in built if b.exists()]
  status = jn.fused_status()
  assert isinstance(status, jn.FusedStatus)
  if not built:
    assert not status.available and status.reason
    pytest.skip("no _step_kernels*.so next to the package nor in the installed distribution")
  assert status.available, status.reason
  assert status.reason == ""
  assert pathlib.Path(status.library).resolve() in [b.resolve() for b in built]


@needs_kernel
@pytest.mark.parametrize("case", list(_CASES))
def test_matches_reference_path(case):
  """Fused vs tx.update + apply_updates on a nested tree, 50 steps under jit.

  Every step compares one fused step taken from the reference path's inputs;
  the end compares the two trajectories. SGD, momentum, RMSProp and AdaGrad
  are bitwise equal throughout; for Adam(W) the state (moments, counts) is
  bitwise equal and the params agree to a few ulp per step.
  """
  make, kernel, exact = _CASES[case]
  if kernel == "adadelta" and jn.fused_status().rsqrt_steps == 0:
    pytest.skip("XLA's rsqrt is not reproduced on this CPU: Adadelta keeps the reference path")
  tx = make()
  params = _params()
  state = tx.init(params)
  fused = jax.jit(_step_fn(tx))
  reference = jax.jit(_step_fn(tx, fused=False))
  g0 = _grads(params, 0)
  assert f"jaxopt_notes_{kernel}" in fused.lower(g0, state, params).as_text()
  assert "jaxopt_notes_" not in reference.lower(g0, state, params).as_text()

  pf, sf = pr, sr = params, state
  for t in range(STEPS):
    g = _grads(params, t)
    one = fused(g, sr, pr)
    pf, sf = fused(g, sf, pf)
    pr, sr = reference(g, sr, pr)
    _assert_bitwise(one[1], sr)
    if exact:
      _assert_bitwise(one[0], pr)
      _assert_bitwise(pf, pr)
    else:
      chex.assert_trees_all_close(one[0], pr, **ONE_STEP_TOL)
  _assert_bitwise(sf, sr)
  chex.assert_trees_all_close((pf, sf), (pr, sr), **TRAJECTORY_TOL)
  chex.assert_tree_all_finite((pf, sf))
  counts = [int(c) for c in _int_leaves(sf)]  # Adam's count, a schedule's step
  assert all(c == STEPS for c in counts)
  assert counts or not (kernel == "adam" or "expdecay" in case)
  # The trajectory moved: equal because both stepped, not because neither did.
  assert not np.array_equal(pf["big"], params["big"])


_SINGLE_LEAF = [
    pytest.param(lambda: jn.adam(1e-2), id="adam"),
    pytest.param(lambda: jn.adamw(1e-2, weight_decay=1e-2), id="adamw"),
    # (b1 = 0.5 keeps the reference path: XLA factors 0.5 * g + 0.5 * m.)
    pytest.param(lambda: jn.adam(1e-2, 0.6, 0.9, 1e-3), id="adam-b1-b2-eps"),
    # XLA contracts v * (1 / bc2) + eps_root into one FMA; so must the kernel.
    pytest.param(lambda: jn.adam(1e-2, eps_root=1e-8), id="adam-eps_root"),
]


@needs_kernel
@pytest.mark.parametrize("make", _SINGLE_LEAF)
def test_single_leaf_adam_bitwise(make):
  """On one leaf XLA rewrites the reference's division as the kernel does: bitwise equal."""
  tx = make()
  params = jnp.asarray(np.random.default_rng(1).normal(size=100_000), jnp.float32)
  state = tx.init(params)
  fused = jax.jit(_step_fn(tx))
  reference = jax.jit(_step_fn(tx, fused=False))
  assert "jaxopt_notes_adam" in fused.lower(params, state, params).as_text()
  pf, sf = pr, sr = params, state
  for t in range(10):
    g = _grads(params, t, seed=1)
    pf, sf = fused(g, sf, pf)
    pr, sr = reference(g, sr, pr)
    _assert_bitwise((pf, sf), (pr, sr))
  assert not np.array_equal(pf, params)


@needs_kernel
class TestAgainstOptax(tj.VariantsTest):

  @chex.variants(with_jit=True, without_jit=True)
  @pytest.mark.parametrize("name,make", [
      ("adam", lambda lib: lib.adam(1e-2)),
      ("adamw", lambda lib: lib.adamw(1e-2, weight_decay=1e-2)),
      ("sgd-nesterov", lambda lib: lib.sgd(1e-2, 0.9, nesterov=True)),
      ("rmsprop", lambda lib: lib.rmsprop(1e-2)),
      ("adagrad", lambda lib: lib.adagrad(1e-2)),
  ])
  def test_trajectory_matches_optax(self, name, make):
    """50 fused steps (fused=True: the kernel must run) vs optax's update + apply_updates."""
    del name
    ours, theirs = make(jn), make(optax)
    params = _params(seed=2, big=20_000)

    def optax_step(g, s, p):
      updates, s = theirs.update(g, s, p)
      return optax.apply_updates(p, updates), s

    ours_step = self.variant(_step_fn(ours, fused=True))
    theirs_step = self.variant(optax_step)
    p, s = params, ours.init(params)
    q, r = params, theirs.init(params)
    for t in range(STEPS):
      g = _grads(params, t, seed=2)
      p, s = ours_step(g, s, p)
      q, r = theirs_step(g, r, q)
    # Op by op, optax's multiplies and adds round separately where the kernel
    # (like XLA under jit) fuses them: an ulp or two of the largest values
    # passed through (params reach ~10), hence the wider atol without jit.
    tol = TRAJECTORY_TOL if tj.is_jit(self.variant) else dict(TRAJECTORY_TOL, atol=1e-5)
    chex.assert_trees_all_close(p, q, **tol)
    chex.assert_trees_all_close(jax.tree.leaves(s), jax.tree.leaves(r), **tol)
    chex.assert_tree_all_finite(p)
    assert not np.array_equal(p["w"], params["w"])


def _bf16(tree):
  return jax.tree.map(lambda x: x.astype(jnp.bfloat16), tree)


# id -> (optimizer, dtype cast for params and grads): no kernel may run.
_FALLBACKS = {
    "nadam": (lambda: jn.nadam(1e-2), None),
    "adamw-mask": (
        lambda: jn.adamw(
            1e-2, weight_decay=1e-2, mask=lambda p: jax.tree.map(lambda x: x.ndim == 2, p)
        ),
        None,
    ),
    "adamw-wd-schedule": (lambda: jn.adamw(1e-2, weight_decay=lambda t: 1e-2 / (1 + t)), None),
    "adam-no-bias-correction": (lambda: jn.adam(1e-2, bias_correction=False), None),
    "adam-bf16-params": (lambda: jn.adam(1e-2), _bf16),
    "adam-bf16-mu": (lambda: jn.adam(1e-2, mu_dtype=jnp.bfloat16), None),
    "sgd-bf16-accumulator": (lambda: jn.sgd(1e-2, 0.9, accumulator_dtype=jnp.bfloat16), None),
    "sgd-average-momentum": (lambda: jn.sgd(1e-2, 0.9, average_momentum=True), None),
    "rmsprop-centered": (lambda: jn.rmsprop(1e-2, centered=True), None),
    "rmsprop-momentum": (lambda: jn.rmsprop(1e-2, momentum=0.9), None),
    "adagrad-eps-outside": (lambda: jn.adagrad(1e-2, eps_in_sqrt=False), None),
    "optax-adam": (lambda: optax.adam(1e-2), None),
}


@pytest.mark.parametrize("case", list(_FALLBACKS))
def test_fallback_is_reference_path(case):
  """Configurations without a kernel: none in the program, and exactly the reference result."""
  make, cast = _FALLBACKS[case]
  tx = make()
  params = _params(seed=3, big=1000)
  grads = _grads(params, 7, seed=3)
  if cast is not None:
    params, grads = cast(params), cast(grads)
  state = tx.init(params)
  assert "jaxopt_notes_" not in _hlo(tx, grads, state, params)
  for t in range(3):
    grads = _grads(params, t + 7, seed=3)
    if cast is not None:
      grads = cast(grads)
    got = jax.jit(_step_fn(tx))(grads, state, params)
    want = jax.jit(_step_fn(tx, fused=False))(grads, state, params)
    _assert_bitwise(got, want)
    params, state = want
  chex.assert_tree_all_finite(params)


@needs_kernel
def test_fused_false_has_no_kernel():
  """fused=False on a kernel-capable optimizer compiles the reference path only."""
  tx = jn.adam(1e-2)
  params = _params(big=1000)
  state = tx.init(params)
  assert "jaxopt_notes_adam" in _hlo(tx, params, state, params)
  assert "jaxopt_notes_adam" in _hlo(tx, params, state, params, fused=True)
  assert "jaxopt_notes_" not in _hlo(tx, params, state, params, fused=False)


@needs_kernel
def test_donation_updates_in_place():
  """Donated params and state are consumed and their buffers reused for the outputs."""
  tx = jn.adam(1e-2)
  params = _params(seed=4)
  state = tx.init(params)
  grads = _grads(params, 3, seed=4)

  def step(p, s, g):
    return jn.apply_step(tx, g, s, p)

  expected = jax.jit(step)(params, state, grads)  # not donated: inputs survive
  donating = jax.jit(step, donate_argnums=(0, 1))
  assert "jaxopt_notes_adam" in donating.lower(params, state, grads).as_text()
  before = {
      "params.big": params["big"].unsafe_buffer_pointer(),
      "params.layers0": params["layers"][0].unsafe_buffer_pointer(),
      "mu.big": state[0].mu["big"].unsafe_buffer_pointer(),
      "nu.layers0": state[0].nu["layers"][0].unsafe_buffer_pointer(),
  }
  new_params, new_state = donating(params, state, grads)
  assert all(x.is_deleted() for x in jax.tree.leaves((params, state)))
  assert not any(x.is_deleted() for x in jax.tree.leaves(grads))
  after = {
      "params.big": new_params["big"].unsafe_buffer_pointer(),
      "params.layers0": new_params["layers"][0].unsafe_buffer_pointer(),
      "mu.big": new_state[0].mu["big"].unsafe_buffer_pointer(),
      "nu.layers0": new_state[0].nu["layers"][0].unsafe_buffer_pointer(),
  }
  assert after == before
  _assert_bitwise((new_params, new_state), expected)


@pytest.mark.parametrize("case,make,cast,reason", [
    ("nadam", lambda: jn.nadam(1e-2), None, "no fused kernel"),
    ("optax", lambda: optax.adam(1e-2), None, "no fused kernel"),
    ("bf16-params", lambda: jn.adam(1e-2), _bf16, "float32"),
    ("bf16-mu", lambda: jn.adam(1e-2, mu_dtype=jnp.bfloat16), None, "float32"),
])
def test_fused_true_raises_with_reason(case, make, cast, reason):
  """fused=True where no kernel can run: ValueError saying why, instead of a silent fallback."""
  del case
  tx = make()
  params = _params(big=100)
  if cast is not None:
    params = cast(params)
  state = tx.init(params)
  if reason == "float32" and not jn.fused_status().available:
    reason = jn.fused_status().reason  # the missing library is reported first
  prefix = r"^apply_step\(fused=True\) cannot use the fused kernel:"
  with pytest.raises(ValueError, match=prefix) as e:
    jn.apply_step(tx, params, state, params, fused=True)
  assert reason in str(e.value)


@pytest.mark.parametrize("fused", ["yes", 2, 1.5])
def test_fused_wrong_type(fused):
  """fused must be None, True or False."""
  tx = jn.adam(1e-2)
  params = _params(big=100)
  with pytest.raises(TypeError, match="fused"):
    jn.apply_step(tx, params, tx.init(params), params, fused=fused)


@needs_kernel
@pytest.mark.parametrize("falsy", [0, np.False_], ids=["int0", "np.False_"])
def test_false_like_fused_never_runs_the_kernel(falsy):
  """A false-like fused (0, np.False_) must not run the kernel: TypeError or the reference path."""
  tx = jn.adam(1e-2)
  params = _params(big=100)
  state = tx.init(params)
  try:
    text = _hlo(tx, params, state, params, fused=falsy)
  except TypeError:
    return
  assert "jaxopt_notes_" not in text


@needs_kernel
def test_python_scalar_leaf_eager():
  """A Python-float param leaf, eagerly: the reference path takes it, so must apply_step."""
  tx = jn.sgd(1e-2)
  params = {"scale": 1.0, "w": jnp.ones(3, jnp.float32)}
  grads = {"scale": 0.5, "w": jnp.ones(3, jnp.float32)}
  got = jn.apply_step(tx, grads, tx.init(params), params)
  chex.assert_trees_all_close(got, jn.apply_step(tx, grads, tx.init(params), params, fused=False))


@needs_kernel
def test_environment_variable_turns_default_off(monkeypatch):
  """JAXOPT_NOTES_FUSED=0 makes the default the reference path; fused=True still fuses."""
  tx = jn.sgd(1e-2, 0.9)
  params = _params(big=100)
  state = tx.init(params)
  monkeypatch.setenv("JAXOPT_NOTES_FUSED", "1")
  assert "jaxopt_notes_momentum" in _hlo(tx, params, state, params)
  monkeypatch.setenv("JAXOPT_NOTES_FUSED", "0")
  assert "jaxopt_notes_" not in _hlo(tx, params, state, params)
  assert "jaxopt_notes_momentum" in _hlo(tx, params, state, params, fused=True)
  got = jax.jit(_step_fn(tx))(params, state, params)
  monkeypatch.delenv("JAXOPT_NOTES_FUSED")
  _assert_bitwise(got, jax.jit(_step_fn(tx, fused=False))(params, state, params))


@needs_kernel
@pytest.mark.parametrize("make", [
    pytest.param(lambda: jn.adam(1e-2), id="adam"),
    pytest.param(lambda: jn.sgd(1e-2, 0.9, nesterov=True), id="sgd-nesterov"),
])
def test_grad_through_step(make):
  """d/dparams and d/dgrads of a loss after one step: the custom_jvp follows the reference."""
  tx = make()
  params = _params(seed=5, big=20_000)
  state = tx.init(params)
  for t in range(3):  # nonzero moments and count
    params, state = jn.apply_step(tx, _grads(params, t + 6, seed=5), state, params)
  grads = _grads(params, 9, seed=5)
  assert "jaxopt_notes_" in _hlo(tx, grads, state, params)
  got = _grads_through_step(tx, params, state, grads)
  # Independently: the update does not depend on params here, so d/dp = 2 p_new.
  new_params, _ = jax.jit(_step_fn(tx, fused=False))(grads, state, params)
  chex.assert_trees_all_close(
      got[0], jax.tree.map(lambda x: 2 * x, new_params), rtol=1e-5, atol=1e-7
  )


@needs_kernel
def test_vmap_matches_separate_steps():
  """vmap over 3 independent param/grad/state sets: 3 separate steps; the kernel runs inside."""
  tx = jn.adam(1e-2)
  sets = []
  for i in range(3):
    p = _params(seed=10 + i, big=20_000)
    s = tx.init(p)
    p, s = jn.apply_step(tx, _grads(p, i + 4, seed=10 + i), s, p, fused=False)
    sets.append((_grads(p, i, seed=20 + i), s, p))
  batched = jax.tree.map(lambda *xs: jnp.stack(xs), *sets)
  vstep = jax.jit(jax.vmap(_step_fn(tx)))
  assert "jaxopt_notes_adam" in vstep.lower(*batched).as_text()
  out = vstep(*batched)
  for i, (g, s, p) in enumerate(sets):
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[i], out), jax.jit(_step_fn(tx))(g, s, p), rtol=1e-6, atol=0
    )
  # The three sets really differ.
  assert not np.allclose(out[0]["w"][0], out[0]["w"][1])


def _scale_by_value():
  """A transform that needs ``value=``: updates times -value."""

  def update(updates, state, params=None, *, value):
    del params
    return jax.tree.map(lambda u: -value * u, updates), state

  return jn.GradientTransformationExtraArgs(lambda p: jn.EmptyState(), update)


@needs_kernel
def test_extra_args():
  """Extra kwargs are ignored by the fused path and forwarded on the reference path."""
  tx = jn.adam(1e-2)
  params = _params(big=20_000)
  state = tx.init(params)
  grads = _grads(params, 5)
  value = jnp.float32(1.0)
  assert "jaxopt_notes_adam" in _hlo(tx, grads, state, params, value=value)
  step = jax.jit(lambda g, s, p, v: jn.apply_step(tx, g, s, p, value=v))
  got = step(grads, state, params, value)
  _assert_bitwise(got, jax.jit(_step_fn(tx))(grads, state, params))
  chex.assert_trees_all_close(
      got, jn.apply_step(tx, grads, state, params, fused=False, value=value), **ONE_STEP_TOL
  )
  # Forwarded where the reference path runs: this transform needs value=.
  by_value = _scale_by_value()
  new_params, _ = jn.apply_step(by_value, grads, by_value.init(params), params, value=2.0)
  chex.assert_trees_all_close(
      new_params, jax.tree.map(lambda p, g: p - 2.0 * g, params, grads), rtol=1e-6
  )


@needs_kernel
@pytest.mark.parametrize(
    "case", ["sgd", "sgd-nesterov", "adam", "adamw", "adam-cosine", "rmsprop", "adagrad"]
)
def test_eager_matches_jit(case):
  """An eager (op-by-op) fused call runs the same kernel as under jit.

  The state is bitwise equal, and so are the params except for Adam(W):
  there the bias corrections ``1 - b**t`` are computed op by op, and XLA's
  ``pow`` can round ``b**t`` one ulp differently alone than inside a jitted
  program (it does at t = 3 for b2 = 0.999), which the cancellation in
  ``1 - b**t`` magnifies to ~1e-5 relative; the reference path shares this.
  """
  make, kernel, _ = _CASES[case]
  tx = make()
  params = _params(seed=6)
  state = tx.init(params)
  for t in range(5):
    grads = _grads(params, t + 4, seed=6)
    eager = jn.apply_step(tx, grads, state, params)
    jitted = jax.jit(_step_fn(tx))(grads, state, params)
    _assert_bitwise(eager[1], jitted[1])
    if kernel == "adam":
      chex.assert_trees_all_close(eager[0], jitted[0], **TRAJECTORY_TOL)
    else:
      _assert_bitwise(eager[0], jitted[0])
    # Op by op the reference path does not fuse multiply-adds: close, not equal.
    chex.assert_trees_all_close(
        eager, jn.apply_step(tx, grads, state, params, fused=False), **TRAJECTORY_TOL
    )
    params, state = eager
  chex.assert_tree_all_finite(params)


@needs_kernel
def test_plain_sgd_on_big_params_keeps_xla_loop():
  """Plain SGD over more than 2**20 params takes the reference path by default.

  XLA already compiles it to one loop per leaf; the kernel is selected only
  where it saves per-call overhead, and fused=True still forces it. Momentum
  (two outputs per leaf) keeps the kernel at any size.
  """
  big = {"w": jnp.zeros((1 << 20) + 1, jnp.float32)}
  small = {"w": jnp.zeros(1 << 20, jnp.float32)}
  sgd = jn.sgd(1e-2)
  assert "jaxopt_notes_sgd" not in _hlo(sgd, big, sgd.init(big), big)
  assert "jaxopt_notes_sgd" in _hlo(sgd, big, sgd.init(big), big, fused=True)
  assert "jaxopt_notes_sgd" in _hlo(sgd, small, sgd.init(small), small)
  momentum = jn.sgd(1e-2, 0.9)
  assert "jaxopt_notes_momentum" in _hlo(momentum, big, momentum.init(big), big)


def test_kernel_built_where_a_compiler_is():
  """On a machine with a C++ compiler, pip install must have built the kernel.

  The extension is optional so that an install without a compiler succeeds;
  this keeps a broken build from passing CI as "no compiler".
  """
  import shutil  # pylint: disable=g-import-not-at-top
  if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
    pytest.skip("no C++ compiler on this machine")
  assert jn.fused_status().available, jn.fused_status().reason


@needs_kernel
def test_rsqrt_variant_matches_xla():
  """The rsqrt variant picked at load reproduces jax.lax.rsqrt on new values.

  The load-time check used seeded probes; here other values, incl. the
  special cases XLA treats apart (0, denormals, FLT_MIN, inf, NaN), go
  through the kernel's AdaGrad step with g = 1, s = x - 1 and lr = 2, whose
  new params are p - 2 rsqrt(x) exactly for p = 0 (and s > 0).
  """
  steps = jn.fused_status().rsqrt_steps
  if steps == 0:
    pytest.skip("no rsqrt variant of this CPU matched XLA's; the kernel divides exactly")
  rng = np.random.default_rng(123)
  x = (np.abs(rng.standard_normal(10_001)) * 10.0 ** rng.uniform(-30, 30, 10_001)).astype(np.float32)
  x[:5] = [1.0, 2.0, 1e30, 3.4e38, np.inf]
  x = np.maximum(x, np.float32(1.5))  # keep s = x - 1 > 0 and exactly representable shifts
  g = jnp.ones_like(x)
  s0 = jnp.asarray(x - 1.0, jnp.float32)
  exact = np.asarray(s0 + 1.0) == x
  tx = jn.adagrad(2.0, eps=0.0)  # lr 2: scaling by a power of two rounds nothing
  state = (tx.init({"w": g})[0]._replace(sum_of_squares={"w": s0}), tx.init({"w": g})[1])
  params = {"w": jnp.zeros_like(g)}
  got, _ = jax.jit(_step_fn(tx, fused=True))({"w": g}, state, params)
  # p + lr * r with p = 0, step -2: 0 - 2r, which is +0 (not -0) for r = rsqrt(inf) = 0.
  want = np.float32(0.0) - np.float32(2.0) * np.asarray(jax.jit(jax.lax.rsqrt)(jnp.asarray(x)))
  np.testing.assert_array_equal(_bits(np.asarray(got["w"])[exact]), _bits(want[exact]))
  assert exact.mean() > 0.5


@needs_kernel
def test_adadelta_fused_step_has_no_temporaries():
  """Adadelta's reference step materialises two param-sized temporaries in XLA
  (peak 1.5x params + grads + state); the fused step writes in place (1.0x)."""
  if jn.fused_status().rsqrt_steps == 0:
    pytest.skip("XLA's rsqrt is not reproduced on this CPU: Adadelta keeps the reference path")
  tx = jn.adadelta()
  params = {"w": jnp.ones(100_000, jnp.float32)}
  state = tx.init(params)
  assert _donated_peak(tx, params, state, fused=True) <= 1.01
  # What the kernel saves; if XLA stops needing temporaries, say so.
  assert _donated_peak(tx, params, state, fused=False) > 1.2


@needs_kernel
@pytest.mark.parametrize("one", [1.0, 1, np.float32(1.0), np.float64(1.0), jnp.float32(1.0)],
                         ids=["float", "int", "np.float32", "np.float64", "jax-array"])
@pytest.mark.parametrize("make", [jn.rmsprop, jn.adagrad], ids=["rmsprop", "adagrad"])
def test_unit_learning_rate_keeps_reference_path(make, one):
  """With the constant learning rate 1 (a Python number, a numpy scalar or a
  concrete array alike), XLA folds the step's -1 into r * g's sign
  (fma(r, -g, p)), which the RMSProp/AdaGrad kernels do not; they step aside
  and the result is the reference path's, bitwise."""
  tx = make(one)
  params = _params(big=1000)
  state = tx.init(params)
  g = _grads(params, 3)
  assert "jaxopt_notes_" not in _hlo(tx, g, state, params)
  got = jax.jit(_step_fn(tx))(g, state, params)
  _assert_bitwise(got, jax.jit(_step_fn(tx, fused=False))(g, state, params))
