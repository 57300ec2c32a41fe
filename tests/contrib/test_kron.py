"""kron / scale_by_kron (contrib/_kron.py) against kron_torch.Kron 0.3.3, in lockstep.

Both sides take the same random numbers: before each step the test reads the
draws our transform will make (``_step_draws`` / ``_probes`` of the key in
our state) and makes the reference return them (its ``rng.random()`` for
balancing, ``torch.randn_like`` for the probes). The reference's
``torch.compile``'d helpers are swapped for the functions they wrap (the same
code, run eagerly: compiling takes minutes on two cores and hides the
``randn_like`` patch). Its one other patch: a scalar parameter, on which
kron_torch fails (``permute(0)`` of a 0-d probe), gets the identity
permutation, the case our docstring documents as a deliberate difference.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from kron_torch import kron as ref

from jaxopt_notes.contrib import _kron as ours
from tests.contrib import _common as cm
from tests.contrib import _torch_ref as cref
from tests.contrib._torch_ref import precision

STEPS = cm.STEPS
# A matrix, a vector, a scalar and an OIHW conv kernel (folded to 18 x 3).
BASE = {"w": (5, 3), "b": (4,), "s": (), "k": (3, 2, 3, 3)}
# With max_size_triangular=8: its 12-long axis (and the kernel's 18) diagonal.
WIDE = {"t": (3, 12)}


def _fast_schedule(lib):
  # Anneals within the 50 steps: periods 1, then 2, 3, ... up to 5.
  return lib.precond_update_prob_schedule(max_prob=1.0, min_prob=0.2, decay=0.1, flat_start=5)


# name -> (kwargs shared by both sides (ours' names; lr is learning_rate), shapes).
CASES = {
    "defaults": (dict(learning_rate=0.02), BASE),
    "hyper": (
        dict(learning_rate=0.03, b1=0.8, weight_decay=0.1, precond_lr=0.3, precond_init_scale=2.0,
             preconditioner_update_probability=0.5),
        BASE,
    ),
    "schedule-raw-grads": (
        dict(learning_rate=0.02, preconditioner_update_probability="fast", momentum_into_precond_update=False),
        BASE,
    ),
    "max-size": (dict(learning_rate=0.02, max_size_triangular=8, weight_decay=0.05), {**BASE, **WIDE}),
    "no-merge-min-ndim-3": (dict(learning_rate=0.02, merge_dims=False, min_ndim_triangular=3), BASE),
    "smart_one_diag": (dict(learning_rate=0.02, memory_save_mode="smart_one_diag"), {**BASE, "q": (4, 4)}),
    "one_diag": (dict(learning_rate=0.02, memory_save_mode="one_diag"), {**BASE, "q": (4, 4)}),
    "all_diag": (dict(learning_rate=0.02, memory_save_mode="all_diag"), BASE),
}

# float64 factors with float64 solves on both sides (see solve64): rounding
# only, from the two libraries' orders of contraction and their triangular
# solvers (measured worst over the cases, 50 steps, params and factors:
# 9e-16 absolute, 4e-15 relative on |x| > 0.1).
F64 = dict(rtol=1e-12, atol=1e-13)
# float64 params as the reference runs them by default: factors, solves and
# the preconditioned step in float32 on both sides (measured 1.2e-7 absolute,
# 1e-6 relative; with float64 factors but the reference's float32 solves,
# not tested, 1.6e-8 and 1.3e-7).
F64_AS_IS = dict(rtol=2e-5, atol=2e-6)
# float32 throughout: float32 rounding carried 50 steps (measured worst over
# all the cases 4.8e-7 absolute, 3.1e-6 relative).
F32 = dict(rtol=5e-5, atol=5e-6)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
  """torch's small einsums and solves run ~20x slower with threads competing for two cores."""
  old = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(old)


@pytest.fixture
def solve64(monkeypatch):
  """Both sides solve X inv(Q) in float64 (the reference's ``.float()`` casts are its only downcasts)."""
  monkeypatch.setattr(ours, "_SOLVE_DTYPE", jnp.float64)
  to_float = torch.Tensor.float
  monkeypatch.setattr(torch.Tensor, "float", lambda self: self if self.dtype == torch.float64 else to_float(self))


class _Feed:
  """The random numbers the reference takes next: its balancing uniform and its probes."""

  def __init__(self):
    self.uniform = None
    self.probes = []
    self.used = 0

  def random(self):  # stands in for the reference's random.Random(42)
    return self.uniform

  def randn_like(self, x, *args, **kwargs):
    v = self.probes[self.used]
    self.used += 1
    assert v.shape == x.shape and v.dtype == x.dtype, (v.shape, x.shape, v.dtype, x.dtype)
    return v


@pytest.fixture
def feed(monkeypatch):
  fed = _Feed()
  for name in ("_update_precond", "_precond_grad", "_clip_update_rms", "_balance_Q"):
    monkeypatch.setattr(ref, name, getattr(ref, name)._torchdynamo_orig_callable)
  monkeypatch.setattr(torch, "randn_like", fed.randn_like)
  permute = torch.Tensor.permute
  monkeypatch.setattr(
      torch.Tensor, "permute", lambda self, *dims: self if self.dim() == 0 and dims == (0,) else permute(self, *dims)
  )
  return fed


def _torch_kwargs(kw, precond_dtype):
  kw = dict(kw)
  kw["lr"] = kw.pop("learning_rate")
  kw.pop("key", None)
  if kw.get("preconditioner_update_probability") == "fast":
    kw["preconditioner_update_probability"] = _fast_schedule(ref)
  if precond_dtype is not None:
    kw["precond_dtype"] = getattr(torch, precond_dtype)
  return kw


def _ours_kwargs(kw, precond_dtype):
  kw = dict(kw)
  if kw.get("preconditioner_update_probability") == "fast":
    kw["preconditioner_update_probability"] = _fast_schedule(ours)
  if precond_dtype is not None:
    kw["precond_dtype"] = getattr(jnp, precond_dtype)
  return kw


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draws(key, dims, dtype):
  """What our next update call draws: the balancing uniform and the probes (cached per layout)."""
  _, uniform, probe_key = ours._step_draws(key)
  return uniform, ours._probes(probe_key, dims, dtype)


def run_both(feed, kw, shapes, dtype, *, precond_dtype=None, jit=True, steps=STEPS):
  """Lockstep runs of kron_torch and ours; the params after every step and both final states."""
  shapes = {k: shapes[k] for k in sorted(shapes)}  # jax's leaf order, so probe i is leaf i on both sides

  def make_reference(params, **torch_kw):
    opt = ref.Kron(params, **torch_kw)
    opt.rng = feed
    schedule = opt.param_groups[0]["preconditioner_update_probability"]
    if isinstance(schedule, ref.ProbScheduler):
      schedule._compiled = False  # the same function, not compiled
    return opt

  torch_kw, kw = _torch_kwargs(kw, precond_dtype), _ours_kwargs(kw, precond_dtype)
  kron_kw = {k: v for k, v in kw.items() if k not in ("learning_rate", "weight_decay")}
  p_dtype = getattr(jnp, precond_dtype or "float32")
  dims = tuple(ours._layout(s, kron_kw.get("merge_dims", True), kron_kw.get("max_size_triangular", 8192),
                            kron_kw.get("min_ndim_triangular", 2), kron_kw.get("memory_save_mode")).dims
               for s in shapes.values())
  updated, torch_q = [], {}

  def before_step(t, state):
    uniform, probes = _draws(state[0].key, dims, p_dtype)
    feed.uniform = float(uniform)
    feed.probes = [torch.from_numpy(np.array(v)) for v in probes]
    feed.used = 0

  def after_step(t, state, opt, tparams):
    # The two sides agree on when the preconditioner was updated.
    updated.append(int(state[0].update_counter) == 0)
    assert feed.used == (len(shapes) if updated[-1] else 0), t
    torch_q.update({k: tuple(q.numpy() for q in opt.state[p]["Q"]) for k, p in tparams.items()})

  run = cref.run_lockstep(make_reference, torch_kw, ours.kron(**kw), shapes, dtype, steps=steps, jit=jit,
                          before_step=before_step, after_step=after_step)
  return run.got, run.want, run.init, (run.state[0], torch_q, updated)


def assert_close(got, want, init, states, tol):
  state, torch_q, _ = states
  for k in want[0]:
    np.testing.assert_allclose(
        np.stack([g[k] for g in got]), np.stack([w[k] for w in want]), err_msg=f"leaf {k}", **tol
    )
    for i, (a, b) in enumerate(zip(state.q[k], torch_q[k])):
      np.testing.assert_allclose(np.asarray(a), b, err_msg=f"factor {i} of {k}", **tol)
  # Means something only if the params moved.
  assert max(np.max(np.abs(want[-1][k] - init[k])) for k in want[0]) > 0.1


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_matches_torch(case, feed, solve64):
  kw, shapes = CASES[case]
  with precision("float64"):
    got, want, init, states = run_both(feed, kw, shapes, "float64", precond_dtype="float64")
  assert_close(got, want, init, states, F64)
  if case == "schedule-raw-grads":
    # The anneal really skipped updates (periods 1 to 5).
    assert 10 < sum(states[2]) < 30


def test_float64_params_float32_preconditioner_as_is(feed):
  """The reference's defaults on float64 params: a float32 preconditioner and float32 solves."""
  kw, shapes = CASES["max-size"]
  with precision("float64"):
    got, want, init, states = run_both(feed, kw, shapes, "float64")
  assert states[0].q["w"][0].dtype == jnp.float32
  assert_close(got, want, init, states, F64_AS_IS)


# One float32 case: the other paths differ from it only in code float64 checks.
def test_float32_matches_torch(feed):
  kw, shapes = CASES["defaults"]
  got, want, init, states = run_both(feed, kw, shapes, "float32")
  assert_close(got, want, init, states, F32)


def _seed_that_balances(events=2, steps=STEPS):
  """The first seed whose balancing draws fall below 0.01 at least ``events`` times in ``steps`` calls."""
  for seed in range(2000):
    key, hits = jax.random.key(seed), 0
    for _ in range(steps):
      key, uniform, _ = ours._step_draws(key)
      hits += float(uniform) < ours._BALANCE_PROBABILITY
    if hits >= events:
      return seed
  raise AssertionError("no seed found")


def test_balancing_matches_torch(feed, solve64, monkeypatch):
  """Balancing keeps the product of the factors, so only the factors themselves show it."""
  kw, shapes = CASES["defaults"]
  balance = ref._balance_Q
  changes = []

  def counted(qs):
    before = [q.clone() for q in qs]
    balance(qs)
    changes.append(max(float((a - b).abs().max()) for a, b in zip(qs, before)))

  monkeypatch.setattr(ref, "_balance_Q", counted)
  with precision("float64"):
    got, want, init, states = run_both(feed, dict(kw, key=_seed_that_balances()), shapes, "float64",
                                       precond_dtype="float64")
  assert_close(got, want, init, states, F64)
  # Balanced at >= 2 steps (each call covers the two matrices), and it moved the factors.
  assert len(changes) >= 4 and max(changes) > 1e-3, changes


def test_op_by_op_matches_torch(feed, solve64):
  """Every op dispatched on its own, the cond's branches too (slow: 3 steps, 2 leaves; an update at step 2)."""
  kw, _ = CASES["hyper"]
  with precision("float64"), jax.disable_jit():
    got, want, _, states = run_both(feed, kw, {"w": (5, 3), "s": ()}, "float64",
                                    precond_dtype="float64", jit=False, steps=3)
  assert states[2] == [False, True, False]
  for k in want[0]:
    np.testing.assert_allclose(np.stack([g[k] for g in got]), np.stack([w[k] for w in want]), **F64)


def test_schedule_and_update_periods_match_torch():
  """The default anneal, value by value, and the steps that update over 5000 calls."""
  n = np.arange(5000, dtype=np.float32)
  reference = ref.precond_update_prob_schedule()
  reference._compiled = False
  want = reference(torch.from_numpy(n)).numpy()
  got = np.asarray(ours.precond_update_prob_schedule()(jnp.asarray(n)))
  # float32 exp of two libraries: within an ulp or two.
  np.testing.assert_allclose(got, want, rtol=3e-7)
  assert got[0] == 1.0 and got[500] == 1.0 and got[-1] == np.float32(0.03)
  # kron_torch skips a parameter without a gradient, so its step() then runs
  # the schedule alone.
  p = torch.zeros(1, requires_grad=True)
  opt = ref.Kron([p])
  opt.param_groups[0]["preconditioner_update_probability"]._compiled = False
  torch_updates = []
  for _ in range(len(n)):
    opt.step()
    torch_updates.append(int(opt._update_counter) == 0)
  tx = ours.scale_by_kron()

  def body(state, _):
    _, state = tx.update(jnp.zeros(1), state)
    return state, state.update_counter == 0

  _, ours_updates = jax.lax.scan(body, tx.init(jnp.zeros(1)), length=len(n))
  np.testing.assert_array_equal(np.asarray(ours_updates), torch_updates)
  assert 200 < sum(torch_updates) < 1500  # every call for 500, then ever rarer


def test_init_state():
  params = {"w": jnp.ones((5, 3)), "b": jnp.ones(4), "k": jnp.ones((3, 2, 3, 3)), "s": jnp.ones(()),
            "t": jnp.ones((1, 4)), "q": jnp.ones((4, 4), jnp.bfloat16)}
  state = ours.scale_by_kron(precond_init_scale=4.0).init(params)
  assert isinstance(state, ours.KronState)
  assert state._fields == ("count", "update_counter", "key", "mu", "q")
  assert state.count.dtype == jnp.int32 and state.update_counter.dtype == jnp.int32 and int(state.count) == 0
  assert jnp.issubdtype(state.key.dtype, jax.dtypes.prng_key)
  chex.assert_trees_all_equal(state.mu, jax.tree.map(jnp.zeros_like, params))
  shapes = {k: tuple(q.shape for q in v) for k, v in state.q.items()}
  assert shapes == {"w": ((5, 5), (3, 3)), "b": ((4,),), "k": ((18, 18), (3, 3)), "s": ((),), "t": ((1,), (4, 4)),
                    "q": ((4, 4), (4, 4))}
  assert all(q.dtype == jnp.float32 for q in jax.tree.leaves(state.q))
  # The scale is split evenly over the factors: sqrt(4) on each of a matrix's two.
  np.testing.assert_array_equal(state.q["w"][0], 2.0 * np.eye(5))
  assert float(state.q["s"][0]) == 4.0 and float(state.q["b"][0][0]) == 4.0

  def shapes_of(**kw):
    st = ours.scale_by_kron(**kw).init(params)
    return {k: tuple(q.shape for q in v) for k, v in st.q.items()}

  assert shapes_of(memory_save_mode="one_diag")["q"] == ((4, 4), (4,))  # ties: the last longest axis
  assert shapes_of(memory_save_mode="smart_one_diag")["q"] == ((4, 4), (4, 4))
  assert shapes_of(memory_save_mode="smart_one_diag")["w"] == ((5,), (3, 3))
  assert shapes_of(memory_save_mode="all_diag")["w"] == ((5,), (3,))
  assert shapes_of(merge_dims=False)["k"] == ((3, 3), (2, 2), (3, 3), (3, 3))
  assert shapes_of(max_size_triangular=4)["w"] == ((5,), (3, 3))
  assert shapes_of(min_ndim_triangular=3)["w"] == ((5,), (3,))
  low = ours.scale_by_kron(mu_dtype=jnp.bfloat16, precond_dtype=jnp.bfloat16).init(params)
  assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(low.mu))
  assert all(q.dtype == jnp.bfloat16 for q in jax.tree.leaves(low.q))


def test_inject_hyperparams_and_schedule_equal_the_plain_run():
  params, grads = cm.random_grads(1, 6)
  kw = dict(weight_decay=0.1, preconditioner_update_probability=0.5)
  plain = cm.run_steps(ours.kron(0.05, **kw), params, grads)
  injected = optax.inject_hyperparams(
      ours.kron, static_args=("max_size_triangular", "min_ndim_triangular", "key"))(learning_rate=0.05, **kw)
  chex.assert_trees_all_close(cm.run_steps(injected, params, grads), plain, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_equal(cm.run_steps(ours.kron(lambda count: 0.05, **kw), params, grads), plain)
  state = injected.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.025)
  halved = cm.run_steps(injected, params, grads, state)
  chex.assert_trees_all_close(halved, cm.run_steps(ours.kron(0.025, **kw), params, grads), rtol=1e-6, atol=1e-7)
  assert not np.allclose(np.asarray(halved["w"]), np.asarray(plain["w"]))


def test_traced_max_size_names_static_args():
  tx = optax.inject_hyperparams(ours.kron, static_args=("key",))(learning_rate=0.05)
  params, _ = cm.random_grads(2, 1)
  with pytest.raises(TypeError, match="`max_size_triangular`.*static_args"):
    jax.jit(tx.init)(params)


def test_multi_steps_equals_kron_on_the_mean_gradients():
  params, grads = cm.random_grads(3, 8)
  kw = dict(learning_rate=0.05, preconditioner_update_probability=0.5)
  cm.assert_multi_steps_is_the_mean_gradients_step(lambda: ours.kron(**kw), params, grads)


def test_bfloat16_runs_and_keeps_its_dtype():
  params, grads = cm.random_grads(4, 5)
  params, grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16), (params, grads))
  for kw in (dict(), dict(precond_dtype=jnp.bfloat16, mu_dtype=jnp.bfloat16)):
    out = cm.run_steps(ours.kron(0.05, **kw), params, grads)
    assert all(v.dtype == jnp.bfloat16 for v in jax.tree.leaves(out))
    assert cm.finite(out) and not np.allclose(np.asarray(out["w"], np.float32), np.asarray(params["w"], np.float32))


def test_the_key_is_the_only_randomness():
  params, grads = cm.random_grads(5, 6)
  tx = ours.kron(0.05, key=3)
  state = tx.init(params)
  typed = ours.kron(0.05, key=jax.random.key(3)).init(params)[0].key
  np.testing.assert_array_equal(jax.random.key_data(typed), jax.random.key_data(state[0].key))
  a = cm.run_steps(tx, params, grads, state)
  chex.assert_trees_all_equal(a, cm.run_steps(tx, params, grads, state))
  other = cm.run_steps(tx, params, grads, (state[0]._replace(key=jax.random.key(4)),) + tuple(state[1:]))
  assert not np.array_equal(np.asarray(a["w"]), np.asarray(other["w"]))


NAN = float("nan")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(learning_rate=NAN), ValueError, "learning_rate"),
    (dict(learning_rate=None), TypeError, "learning_rate"),
    (dict(b1=1.0), ValueError, "b1"),
    (dict(weight_decay=-1e-2), ValueError, "weight_decay"),
    (dict(preconditioner_update_probability=0.0), ValueError, "preconditioner_update_probability"),
    (dict(preconditioner_update_probability=1.5), ValueError, "preconditioner_update_probability"),
    (dict(preconditioner_update_probability="often"), TypeError, "preconditioner_update_probability"),
    (dict(max_size_triangular=2.5), TypeError, "max_size_triangular"),
    (dict(max_size_triangular=-1), ValueError, "max_size_triangular"),
    (dict(min_ndim_triangular=-1), ValueError, "min_ndim_triangular"),
    (dict(memory_save_mode="half_diag"), ValueError, "memory_save_mode"),
    (dict(momentum_into_precond_update=1), TypeError, "momentum_into_precond_update"),
    (dict(merge_dims="yes"), TypeError, "merge_dims"),
    (dict(precond_lr=-0.1), ValueError, "precond_lr"),
    (dict(precond_init_scale=0.0), ValueError, "precond_init_scale"),
    (dict(mu_dtype="float33"), TypeError, "mu_dtype"),
    (dict(precond_dtype=jnp.int32), TypeError, "precond_dtype"),
    (dict(key=-1), ValueError, "key"),
    (dict(key=jax.random.PRNGKey(0)), TypeError, "key"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
  cm.assert_raises_naming(ours.kron, kwargs, error, name)


@pytest.mark.parametrize("kwargs, name", [
    (dict(max_prob=0.0), "max_prob"), (dict(min_prob=2.0), "min_prob"), (dict(decay=-1.0), "decay"),
    (dict(flat_start=NAN), "flat_start"),
])
def test_bad_schedule_arguments_raise_naming_the_argument(kwargs, name):
  cm.assert_raises_naming(ours.precond_update_prob_schedule, kwargs, ValueError, name)
