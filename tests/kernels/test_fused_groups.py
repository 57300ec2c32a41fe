"""The fused step over many leaves: several custom calls of at most ``_GROUP`` leaves each.

One call over every leaf made XLA's compile time grow faster than linearly with the leaf
count (its input/output aliases): a minute for Adam on 1000 leaves. Grouped calls keep the
per-leaf arithmetic, the in-place updates and the numbers; these tests check all three.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from jaxopt_notes.kernels import fused
from tests.kernels import test_fused as tf
from tests.kernels.test_fused import _default_fusing  # noqa: F401  (autouse fixture)

needs_kernel = tf.needs_kernel

N_LEAVES = 2 * fused._GROUP + 7  # three groups, the last one short


def _tree(seed, scale=1.0, width=4):
  rng = np.random.default_rng(seed)
  return {f"leaf{i:03d}": jnp.asarray(rng.normal(size=(3 + i % 5, width)) * scale, jnp.float32)
          for i in range(N_LEAVES)}


def _steps(tx, fused_flag, steps=3):
  params, state = _tree(0), tx.init(_tree(0))
  step = jax.jit(lambda p, s, g: jn.apply_step(tx, g, s, p, fused=fused_flag))
  for t in range(steps):
    params, state = step(params, state, _tree(10 + t, 0.1))
  return params, state, step.lower(params, state, params).as_text()


@needs_kernel
@pytest.mark.parametrize("make, kernel", [
    (lambda: jn.sgd(1e-2, momentum=0.9), "momentum"),
    (lambda: jn.adadelta(), "adadelta"),
])
def test_grouped_calls_are_bitwise_the_reference_path(make, kernel):
  """Every leaf's params and state are bit for bit the reference path's, through three calls."""
  if kernel == "adadelta" and jn.fused_status().rsqrt_steps == 0:
    pytest.skip("the adadelta kernel needs XLA's rsqrt reproduced on this CPU")
  tx = make()
  p_fused, s_fused, text = _steps(tx, None)
  p_ref, s_ref, ref_text = _steps(tx, False)
  calls = re.findall(rf"jaxopt_notes_{kernel}\b", text)
  assert len(calls) == -(-N_LEAVES // fused._GROUP) == 3, text.count("custom_call")
  assert "jaxopt_notes_" not in ref_text
  tf._assert_bitwise((p_fused, s_fused), (p_ref, s_ref))


@needs_kernel
def test_grouped_adam_keeps_the_documented_tolerance():
  """Adam over many leaves: state bitwise, params to a few ulp (as for one call)."""
  tx = jn.adam(1e-2)
  p_fused, s_fused, text = _steps(tx, None)
  p_ref, s_ref, _ = _steps(tx, False)
  assert len(re.findall(r"jaxopt_notes_adam\b", text)) == 3
  tf._assert_bitwise(s_fused, s_ref)
  for a, b in zip(jax.tree.leaves(p_fused), jax.tree.leaves(p_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


@needs_kernel
def test_grouped_calls_update_donated_buffers_in_place():
  """With params and state donated the grouped step allocates nothing param-sized: peak 1.00x.

  The leaves are large enough (a few KB) that XLA's tables of buffer pointers, a few bytes
  per leaf, stay out of the ratio.
  """
  tx = jn.adam(1e-2)
  params = _tree(1, width=512)
  state = tx.init(params)
  step = jax.jit(lambda p, s, g: jn.apply_step(tx, g, s, p), donate_argnums=(0, 1))
  mem = step.lower(params, state, params).compile().memory_analysis()
  live = mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes + mem.temp_size_in_bytes
  assert live / mem.argument_size_in_bytes < 1.01
  before = params["leaf100"].unsafe_buffer_pointer()
  new_params, _ = step(params, state, _tree(2, 0.1, width=512))
  assert new_params["leaf100"].unsafe_buffer_pointer() == before
