"""Tests for jaxopt_notes.data.minibatches: full batch, minibatch, stochastic."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_notes.training.data import minibatches, steps_per_epoch

N = 23


def _data(n=N):
  # Example i carries its own id in both leaves, so pairing is checkable.
  ids = jnp.arange(n)
  return {"x": jnp.stack([ids, 10 * ids], axis=1).astype(jnp.float32), "y": ids}


def _epochs_of(batches, n, b, drop, epochs):
  per = steps_per_epoch(n, b, drop)
  return [batches[e * per:(e + 1) * per] for e in range(epochs)]


@pytest.mark.parametrize(
    "batch_size, drop_remainder",
    [(b, d) for b in (None, 1, 5, N, 40) for d in (False, True) if not (d and b == 40)],
)
def test_each_epoch_sees_every_example_once(batch_size, drop_remainder):
  epochs = 3
  batches = list(minibatches(_data(), batch_size, key=jax.random.key(0),
                             drop_remainder=drop_remainder, epochs=epochs))
  b = N if batch_size is None else batch_size
  per_epoch = N // b if drop_remainder else math.ceil(N / b)
  assert len(batches) == epochs * per_epoch
  for epoch in _epochs_of(batches, N, batch_size, drop_remainder, epochs):
    ids = np.concatenate([np.asarray(batch["y"]) for batch in epoch])
    for batch in epoch:
      np.testing.assert_array_equal(batch["x"][:, 0], batch["y"].astype(np.float32))
      np.testing.assert_array_equal(batch["x"][:, 1], 10 * batch["y"].astype(np.float32))
    if drop_remainder:
      assert len(ids) == (N // b) * b and len(set(ids.tolist())) == len(ids)
      assert all(len(batch["y"]) == b for batch in epoch)
    else:
      np.testing.assert_array_equal(np.sort(ids), np.arange(N))
      sizes = [len(batch["y"]) for batch in epoch]
      expected = [N] if b >= N else [b] * (N // b) + ([N % b] if N % b else [])
      assert sizes == expected


def test_order_is_the_documented_permutation():
  key = jax.random.key(3)
  b, epochs = 4, 2
  batches = list(minibatches(_data(), b, key=key, epochs=epochs))
  for e, epoch in enumerate(_epochs_of(batches, N, b, False, epochs)):
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), N))
    np.testing.assert_array_equal(np.concatenate([x["y"] for x in epoch]), perm)


def test_shuffle_modes():
  key = jax.random.key(1)
  run = lambda shuffle, k=key: np.concatenate(
      [b["y"] for b in minibatches(_data(), 4, key=k, shuffle=shuffle, epochs=3)]
  ).reshape(3, N)
  each = run("epoch")
  assert not np.array_equal(each[0], each[1]) and not np.array_equal(each[1], each[2])
  once = run("once")
  np.testing.assert_array_equal(once[0], once[1])
  np.testing.assert_array_equal(once[0], once[2])
  np.testing.assert_array_equal(once[0], each[0])  # "once" is epoch 0's order
  assert not np.array_equal(once[0], np.arange(N))
  fixed = run(None, None)
  np.testing.assert_array_equal(fixed, np.tile(np.arange(N), (3, 1)))


def test_deterministic_from_key():
  a = list(minibatches(_data(), 3, key=jax.random.key(7), epochs=2))
  b = list(minibatches(_data(), 3, key=jax.random.key(7), epochs=2))
  c = list(minibatches(_data(), 3, key=jax.random.key(8), epochs=2))
  chex.assert_trees_all_equal(a, b)
  assert not all(np.array_equal(x["y"], z["y"]) for x, z in zip(a, c))


def test_full_batch_is_the_data_in_stored_order():
  data = _data()
  (batch,) = list(minibatches(data, None, key=jax.random.key(0)))
  chex.assert_trees_all_equal(batch, data)


def test_numpy_tuple_data_and_legacy_key():
  x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
  y = np.arange(10)
  out = list(minibatches((x, y), 4, key=jax.random.PRNGKey(0)))
  assert [b[0].shape for b in out] == [(4, 3), (4, 3), (2, 3)]
  assert all(isinstance(b[0], jax.Array) for b in out)
  for bx, by in out:
    np.testing.assert_array_equal(np.asarray(bx), x[np.asarray(by)])


def test_steps_per_epoch():
  assert steps_per_epoch(100, None) == 1
  assert steps_per_epoch(100, 1) == 100
  assert steps_per_epoch(100, 32) == 4
  assert steps_per_epoch(100, 32, drop_remainder=True) == 3
  assert steps_per_epoch(100, 100, drop_remainder=True) == 1


@pytest.mark.parametrize("batch_size", [0, -3])
def test_non_positive_batch_size(batch_size):
  with pytest.raises(ValueError, match="batch_size"):
    minibatches(_data(), batch_size, key=jax.random.key(0))


def test_bad_batch_size_type():
  with pytest.raises(TypeError, match="batch_size"):
    minibatches(_data(), 2.5, key=jax.random.key(0))
  with pytest.raises(TypeError, match="batch_size"):
    minibatches(_data(), True, key=jax.random.key(0))


def test_batch_larger_than_data_with_drop_remainder():
  with pytest.raises(ValueError, match="drop"):
    minibatches(_data(), N + 1, key=jax.random.key(0), drop_remainder=True)
  # Without dropping it is one full batch.
  assert len(list(minibatches(_data(), N + 1, key=jax.random.key(0)))) == 1


def test_mismatched_leading_sizes_name_the_leaf():
  data = {"x": jnp.zeros((5, 2)), "nested": {"y": jnp.zeros(4)}}
  with pytest.raises(ValueError, match=r"data\['nested'\]\['y'\] has 4"):
    minibatches(data, 2, key=jax.random.key(0))


def test_scalar_and_empty_data():
  with pytest.raises(ValueError, match=r"data\['s'\] is a scalar"):
    minibatches({"x": jnp.zeros(3), "s": jnp.zeros(())}, 2, key=jax.random.key(0))
  with pytest.raises(ValueError, match="no arrays"):
    minibatches({}, 2, key=jax.random.key(0))
  with pytest.raises(ValueError, match="no examples"):
    minibatches(jnp.zeros((0, 3)), 2, key=jax.random.key(0))


@pytest.mark.parametrize("shuffle", ["always", True, "Epoch"])
def test_bad_shuffle(shuffle):
  with pytest.raises(ValueError, match="shuffle"):
    minibatches(_data(), 2, key=jax.random.key(0), shuffle=shuffle)


def test_key_required_to_shuffle():
  with pytest.raises(ValueError, match="key"):
    minibatches(_data(), 2, key=None)
  with pytest.raises(TypeError, match="key"):
    minibatches(_data(), 2, key=0)


def test_bad_epochs():
  with pytest.raises(ValueError, match="epochs"):
    minibatches(_data(), 2, key=jax.random.key(0), epochs=0)


def test_errors_raise_at_the_call_not_the_first_next():
  # A generator function would defer this to next(); the check must be eager.
  with pytest.raises(ValueError):
    minibatches(_data(), 0, key=jax.random.key(0))
