"""adam_mini against adam_mini.Adam_mini (1.1.1, the authors' package): 50-step
lockstep trajectories on a tiny transformer's named params (dim 8, 2 heads),
Hugging Face, Meta-Llama and GPT-2 name styles, GQA, weight decay (the README's
options: AdamW's values plus dim, n_heads, n_kv_heads), the flax layout and a
relabelled partition, float64 and float32; the blocks each name gets (read from
the reference's own state); the reduced second moment; jit, inject_hyperparams,
MultiSteps; bad arguments.

The reference runs single-process on CPU: it calls torch.distributed only
when ``torch.cuda.device_count() > 1``, so no process group is needed.
Both sides follow their own trajectory on the same random non-quadratic
problem, step by step; each side differentiates the loss itself.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from adam_mini import Adam_mini

import jaxopt_notes as jn
from jaxopt_notes.contrib import _adam_mini as ours
from tests.contrib import _common as cm
from tests.contrib._torch_ref import precision

STEPS = cm.STEPS
DIM, HEADS = 8, 2

# Hugging Face Llama names (q_proj given a bias: "bias" wins over "q_proj").
HF = {
    "model.embed_tokens.weight": (16, 8),
    "model.layers.0.input_layernorm.weight": (8,),
    "model.layers.0.self_attn.q_proj.weight": (8, 8),
    "model.layers.0.self_attn.q_proj.bias": (8,),
    "model.layers.0.self_attn.k_proj.weight": (8, 8),
    "model.layers.0.self_attn.v_proj.weight": (8, 8),
    "model.layers.0.self_attn.o_proj.weight": (8, 8),
    "model.layers.0.post_attention_layernorm.weight": (8,),
    "model.layers.0.mlp.gate_proj.weight": (12, 8),
    "model.layers.0.mlp.up_proj.weight": (12, 8),
    "model.layers.0.mlp.down_proj.weight": (8, 12),
    "model.norm.weight": (8,),
    "lm_head.weight": (16, 8),
    "logit_scale": (),
}
HF_LABELS = dict(zip(HF, [
    "embed", "block", "heads", "adam", "heads", "neuron", "neuron", "block", "neuron", "neuron", "neuron",
    "block", "neuron", "block",
]))
# GQA with one key/value head: k and v have one head's rows.
GQA = {**HF, "model.layers.0.self_attn.k_proj.weight": (4, 8), "model.layers.0.self_attn.v_proj.weight": (4, 8)}
# Meta-Llama and GPT-2 names (GPT-2's Conv1D weights are (in, out); the
# reference still takes their rows). c_attn, c_proj and wpe match no keyword.
MIXED = {
    "tok_embeddings.weight": (16, 8),
    "layers.0.attention.wq.weight": (8, 8),
    "layers.0.attention.wk.weight": (8, 8),
    "layers.0.attention.wv.weight": (8, 8),
    "layers.0.attention.wo.weight": (8, 8),
    "layers.0.attention_norm.weight": (8,),
    "layers.0.feed_forward.w1.weight": (12, 8),
    "output.weight": (16, 8),
    "transformer.wte.weight": (16, 8),
    "transformer.wpe.weight": (6, 8),
    "transformer.h.0.ln_1.weight": (8,),
    "transformer.h.0.ln_1.bias": (8,),
    "transformer.h.0.attn.c_attn.weight": (8, 24),
    "transformer.h.0.attn.c_proj.weight": (8, 8),
    "transformer.h.0.mlp.c_fc.weight": (8, 12),
    "transformer.h.0.mlp.c_proj.weight": (12, 8),
    "transformer.ln_f.weight": (8,),
}
MIXED_LABELS = dict(zip(MIXED, [
    "embed", "heads", "heads", "neuron", "neuron", "block", "neuron", "neuron", "embed", "block", "block", "adam",
    "block", "block", "neuron", "neuron", "block",
]))

# (torch keyword arguments, named shapes).
CASES = {
    "defaults": (dict(lr=1e-2), HF),
    "adamw-values-decay": (dict(lr=2e-2, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1), HF),
    "gqa-decay": (dict(lr=2e-2, weight_decay=0.1, n_kv_heads=1), GQA),
    "meta-gpt2-names-decay": (dict(lr=2e-2, betas=(0.8, 0.99), weight_decay=0.05), MIXED),
}

# float64: the same formulas up to association (torch divides by sqrt(bc2)
# after the root, lerps m, multiplies p by 1 - lr wd before the step);
# measured worst over the cases, the flax layout and the op-by-op run,
# 50 steps: 2.4e-15 absolute.
F64 = dict(rtol=1e-12, atol=1e-13)
# float32: the same rounding differences at float32's epsilon, carried and
# amplified by 50 steps of the sin term (measured worst over the cases
# 9.4e-6 absolute, gqa-decay, the case run here).
F32 = dict(rtol=1e-4, atol=3e-5)


def nest(flat):
  """``{"a.0.b": x}`` -> ``{"a": [{"b": x}]}``: dicts, and lists where the keys are indices."""
  tree: dict = {}
  for name, value in flat.items():
    *parents, last = name.split(".")
    node = tree
    for key in parents:
      node = node.setdefault(key, {})
    node[last] = value

  def listify(node):
    if not isinstance(node, dict):
      return node
    node = {k: listify(v) for k, v in node.items()}
    if all(k.isdigit() for k in node):
      return [node[str(i)] for i in range(len(node))]
    return node

  return listify(tree)


def flatten(tree, prefix=""):
  """The inverse of :func:`nest`, written independently of the module's names."""
  items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else None
  if items is None:
    return {prefix: tree}
  out = {}
  for k, v in items:
    out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
  return out


def _problem(shapes, seed=0):
  rng = np.random.default_rng(seed)
  init = {k: rng.normal(size=s) for k, s in shapes.items()}
  curv = {k: rng.uniform(0.5, 2.0, size=s) for k, s in shapes.items()}
  noise = {k: rng.normal(size=(STEPS,) + s) for k, s in shapes.items()}
  return init, curv, noise


def _loss(curv, p, n, lib):
  return sum(lib.sum(0.5 * curv[k] * p[k] ** 2 + 0.2 * lib.sin(2 * p[k]) + n[k] * p[k]) for k in p)


def _ours_kwargs(kw):
  kw = dict(kw)
  kw["learning_rate"] = kw.pop("lr")
  if "betas" in kw:
    kw["b1"], kw["b2"] = kw.pop("betas")
  return dict(kw, dim=DIM, n_heads=HEADS)


def run_torch(kw, shapes, dtype, steps=STEPS):
  """The reference's params after every step, and the optimizer."""
  init, curv, noise = _problem(shapes)
  tdt = getattr(torch, dtype)
  tparams = {k: torch.nn.Parameter(torch.tensor(v, dtype=tdt)) for k, v in init.items()}
  tcurv = {k: torch.tensor(v, dtype=tdt) for k, v in curv.items()}
  opt = Adam_mini(list(tparams.items()), dim=DIM, n_heads=HEADS, verbose=False, **kw)
  out = []
  for t in range(steps):
    opt.zero_grad()
    _loss(tcurv, tparams, {k: torch.tensor(v[t], dtype=tdt) for k, v in noise.items()}, torch).backward()
    opt.step()
    out.append({k: v.detach().numpy().copy() for k, v in tparams.items()})
  return out, opt, tparams


def run_ours(tx, shapes, dtype, *, names=None, to_ours=None, jit=True, steps=STEPS):
  """Ours on the same problem; ``names`` renames leaves, ``to_ours`` re-lays arrays (name -> fn, fn)."""
  init, curv, noise = _problem(shapes)
  names = names or {k: k for k in shapes}
  there = lambda k, x: to_ours[k][0](x) if to_ours and k in to_ours else x
  back = lambda k, x: to_ours[k][1](x) if to_ours and k in to_ours else x
  lay = lambda d, dt: {names[k]: jnp.asarray(there(k, v), dt) for k, v in d.items()}
  jcurv = lay(curv, dtype)
  grad = jax.grad(lambda p, n: _loss(flatten(jcurv), flatten(p), flatten(n), jnp))
  update = jax.jit(tx.update) if jit else tx.update
  grad = jax.jit(grad) if jit else grad
  p = nest(lay(init, dtype))
  state = tx.init(p)
  out = []
  for t in range(steps):
    noise_t = nest({names[k]: jnp.asarray(there(k, v[t]), dtype) for k, v in noise.items()})
    u, state = update(grad(p, noise_t), state, p)
    p = jn.apply_updates(p, u)
    flat = flatten(p)
    out.append({k: np.asarray(back(k, flat[names[k]])) for k in shapes})
  assert all(v.dtype == np.dtype(dtype) for v in out[-1].values())
  return out, state, init


def assert_close(got, want, init, tol):
  for k in want[0]:
    np.testing.assert_allclose(
        np.stack([g[k] for g in got]), np.stack([w[k] for w in want]), err_msg=f"leaf {k}", **tol
    )
  # Means something only if the params moved.
  assert min(np.max(np.abs(want[-1][k] - init[k])) for k in want[0]) > 1e-2


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_matches_the_reference(case):
  kw, shapes = CASES[case]
  with precision("float64"):
    want, _, _ = run_torch(kw, shapes, "float64")
    got, _, init = run_ours(ours.adam_mini(**_ours_kwargs(kw)), shapes, "float64")
  assert_close(got, want, init, F64)


def test_float32_matches_the_reference():
  kw, shapes = CASES["gqa-decay"]
  want, _, _ = run_torch(kw, shapes, "float32")
  got, _, init = run_ours(ours.adam_mini(**_ours_kwargs(kw)), shapes, "float32")
  assert_close(got, want, init, F32)


def test_op_by_op_matches_the_reference():
  kw, shapes = CASES["adamw-values-decay"]
  with precision("float64"):
    want, _, _ = run_torch(kw, shapes, "float64", steps=10)
    got, _, init = run_ours(ours.adam_mini(**_ours_kwargs(kw)), shapes, "float64", jit=False, steps=10)
  assert_close(got, want, init, F64)


def _flax_layouts():
  """flax's arrays for HF's: Dense kernels (in, out), q/k as (in, heads, hd), o as (heads, hd, out)."""
  t = (lambda w: w.T, lambda k: k.T)
  split_out = (lambda w: w.T.reshape(w.shape[1], HEADS, -1), lambda k: k.reshape(k.shape[0], -1).T)
  split_in = (lambda w: w.T.reshape(HEADS, -1, w.shape[0]), lambda k: k.reshape(-1, k.shape[-1]).T)
  layers = "model.layers.0."
  return {
      layers + "self_attn.q_proj.weight": split_out, layers + "self_attn.k_proj.weight": split_out,
      layers + "self_attn.o_proj.weight": split_in, layers + "self_attn.v_proj.weight": t,
      layers + "mlp.gate_proj.weight": t, layers + "mlp.up_proj.weight": t, layers + "mlp.down_proj.weight": t,
      "lm_head.weight": t,  # the embedding table is (vocab, features) in flax too
  }


def test_flax_layout_matches_the_reference_transposed():
  kw, shapes = CASES["adamw-values-decay"]
  names = {k: k.replace(".weight", ".kernel") if len(s) == 2 else k for k, s in shapes.items()}
  names["model.embed_tokens.weight"] = "model.embed_tokens.embedding"
  with precision("float64"):
    want, _, _ = run_torch(kw, shapes, "float64")
    tx = ours.adam_mini(**_ours_kwargs(kw), layout="flax")
    got, state, init = run_ours(tx, shapes, "float64", names=names, to_ours=_flax_layouts())
  assert_close(got, want, init, F64)
  nu = flatten(state[0].nu)
  assert nu["model.layers.0.self_attn.q_proj.kernel"].shape == (HEADS, 1)
  assert nu["model.layers.0.self_attn.o_proj.kernel"].shape == (1, 1, 8)
  assert nu["lm_head.kernel"].shape == (1, 16)
  assert nu["model.embed_tokens.embedding"].shape == (16, 1)


def test_flax_layout_is_needed_for_transposed_kernels():
  """The same run with the torch layout cuts the kernels the wrong way: the test above can fail."""
  kw, shapes = CASES["adamw-values-decay"]
  with precision("float64"):
    want, _, _ = run_torch(kw, shapes, "float64")
    got, _, _ = run_ours(ours.adam_mini(**_ours_kwargs(kw)), shapes, "float64", to_ours=_flax_layouts())
  assert np.max(np.abs(got[-1]["lm_head.weight"] - want[-1]["lm_head.weight"])) > 1e-3


@pytest.mark.parametrize("as_function", [False, True])
def test_partition_override_matches_the_reference(as_function):
  """Generic names get the reference's blocks through ``partition`` (a pytree, or a function of the params)."""
  kw, shapes = CASES["defaults"]
  names = {k: f"p{i}" for i, k in enumerate(shapes)}
  labels = {names[k]: v for k, v in HF_LABELS.items()}
  partition = (lambda params: {k: labels[k] for k in params}) if as_function else labels
  with precision("float64"):
    want, _, _ = run_torch(kw, shapes, "float64")
    got, _, init = run_ours(ours.adam_mini(**_ours_kwargs(kw), partition=partition), shapes, "float64", names=names)
    plain, _, _ = run_ours(ours.adam_mini(**_ours_kwargs(kw)), shapes, "float64", names=names)
  assert_close(got, want, init, F64)
  # Left to the name rules, "p0" ... are whole-leaf blocks: another run.
  assert max(np.max(np.abs(plain[-1][k] - want[-1][k])) for k in shapes) > 1e-3


def _reference_kind(opt, p):
  """The block kind the reference gave ``p``, read from its state's shapes."""
  s = opt.state[p]
  if "v" in s:
    return "adam"
  if s["m"].shape != p.shape:
    return "heads"
  return "block" if s["vmean"].ndim == 0 else "rows"


@pytest.mark.parametrize("shapes, labels", [(GQA, HF_LABELS), (MIXED, MIXED_LABELS)], ids=["hf-gqa", "meta-gpt2"])
def test_labels_and_state_sizes_are_the_references(shapes, labels):
  _, opt, tparams = run_torch(dict(lr=1e-2, n_kv_heads=1), shapes, "float32", steps=1)
  assert ours.adam_mini_partition(nest({k: 0.0 for k in shapes})) == nest(labels)
  state = ours.adam_mini(1e-2, dim=DIM, n_heads=HEADS, n_kv_heads=1).init(nest(_problem(shapes)[0]))
  nu = flatten(state[0].nu)
  for k, p in tparams.items():
    # torch's per-row kind serves embed and neuron alike.
    assert _reference_kind(opt, p) == {"embed": "rows", "neuron": "rows"}.get(labels[k], labels[k]), k
    ref = opt.state[p].get("v", opt.state[p].get("vmean"))
    assert nu[k].size == ref.numel(), k


def test_state_fields_dtypes_and_the_memory_saving():
  with precision("float64"):
    params = nest({k: jnp.ones(s) for k, s in GQA.items()})
    state = ours.scale_by_adam_mini(dim=DIM, n_heads=HEADS, n_kv_heads=1).init(params)
  assert isinstance(state, ours.ScaleByAdamMiniState)
  assert state._fields == ("count", "mu", "nu")
  assert state.count.dtype == jnp.int32 and int(state.count) == 0
  chex.assert_trees_all_equal(state.mu, jax.tree.map(jnp.zeros_like, params))
  nu = flatten(state.nu)
  assert all(v.dtype == jnp.float64 and not np.any(v) for v in nu.values())
  assert nu["model.layers.0.self_attn.q_proj.weight"].shape == (2, 1)
  assert nu["model.layers.0.self_attn.k_proj.weight"].shape == (1, 1)
  assert nu["model.layers.0.self_attn.q_proj.bias"].shape == (8,)
  assert nu["model.layers.0.mlp.down_proj.weight"].shape == (8, 1)
  assert nu["model.norm.weight"].shape == (1,) and nu["logit_scale"].shape == ()
  size = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  # 769 params, 91 second-moment values (32 of them the vocabulary's rows in embed and lm_head).
  assert size(state.mu) == 769 and size(state.nu) == 91


def test_generic_names_get_one_value_per_leaf():
  """tests/_every.py's targets ("w", "b", bare arrays, tuples): every leaf one block."""
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "s": jnp.ones(())}
  assert ours.adam_mini_partition(params) == {"w": "block", "b": "block", "s": "block"}
  state = ours.scale_by_adam_mini().init((jnp.ones(3), params))
  assert jax.tree.map(jnp.shape, state.nu) == ((1,), {"w": (1, 1), "b": (1,), "s": ()})


def test_adam_label_is_adamw():
  """One value per entry is AdamW: equal to optax.adamw (same formulas, so to rounding)."""
  params, grads = cm.random_grads(0, 20, SMALL)
  kw = dict(learning_rate=0.05, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1)
  partition = jax.tree.map(lambda _: "adam", params)
  every = jax.tree.map(lambda _: True, params)
  got = cm.run_steps(ours.adam_mini(**kw, partition=partition, mask=every), params, grads)
  chex.assert_trees_all_close(got, cm.run_steps(optax.adamw(**kw), params, grads), rtol=1e-6, atol=1e-7)


# Two adam-mini blocks by name and a vector.
SMALL = {"q_proj": (4, 4), "mlp": (3, 4), "norm": (4,)}


HEAD_ARGS = dict(dim=4, n_heads=2)
INJECTED = dict(rtol=1e-5, atol=1e-5)


def test_inject_hyperparams_and_schedule_equal_the_plain_run():
  params, grads = cm.random_grads(1, 8, SMALL)
  kw = dict(weight_decay=0.1, **HEAD_ARGS)
  plain = cm.run_steps(ours.adam_mini(0.05, **kw), params, grads)
  injected = optax.inject_hyperparams(ours.adam_mini, static_args=("dim", "n_heads"))(learning_rate=0.05, **kw)
  # Injected, b1, b2, eps and the rate are float32 arrays where the plain run
  # folds Python floats: float32 rounding over 8 steps (measured 2e-6 absolute).
  chex.assert_trees_all_close(cm.run_steps(injected, params, grads), plain, **INJECTED)
  chex.assert_trees_all_equal(cm.run_steps(ours.adam_mini(lambda count: 0.05, **kw), params, grads), plain)
  state = injected.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.025)
  halved = cm.run_steps(injected, params, grads, state)
  chex.assert_trees_all_close(halved, cm.run_steps(ours.adam_mini(0.025, **kw), params, grads), **INJECTED)
  assert not np.allclose(np.asarray(halved["mlp"]), np.asarray(plain["mlp"]))


def test_traced_dim_names_static_args():
  tx = optax.inject_hyperparams(ours.adam_mini)(learning_rate=0.05, **HEAD_ARGS)
  params, grads = cm.random_grads(2, 1, SMALL)
  with pytest.raises(TypeError, match="`dim`.*static_args"):
    jax.jit(tx.update)(grads[0], tx.init(params), params)


def test_multi_steps_equals_adam_mini_on_the_mean_gradients():
  params, grads = cm.random_grads(3, 8, SMALL)
  kw = dict(learning_rate=0.05, **HEAD_ARGS)
  cm.assert_multi_steps_is_the_mean_gradients_step(lambda: ours.adam_mini(**kw), params, grads)


def test_update_needs_params_but_the_scaling_does_not():
  """The decay step needs them (even at 0, as every chain with add_decayed_weights); the scaling alone not."""
  cm.assert_update_needs_params(ours.adam_mini(1e-2))
  tx = ours.scale_by_adam_mini()
  params = {"w": jnp.ones((2, 2))}
  u, _ = tx.update({"w": jnp.ones((2, 2))}, tx.init(params), None)
  # The first step is sign(g), to float32's rounding of 1 - b2 against 1 - b2 ** 1 (optax.adam: the same).
  np.testing.assert_allclose(u["w"], 1.0, rtol=1e-5)


@pytest.mark.parametrize("params, kwargs, match", [
    ({"q_proj": jnp.ones((4, 4))}, {}, "`dim` and `n_heads` must be given"),
    ({"q_proj": jnp.ones((3, 4))}, HEAD_ARGS, "'q_proj'.*cannot be cut into heads"),
    ({"w": jnp.ones(2)}, dict(partition={"w": "row"}), "`partition` labels.*'row'.*'w'"),
    ({"w": jnp.ones(2)}, dict(partition={"v": "adam"}), "`partition` must have the params' structure"),
])
def test_bad_params_or_partition_raise_at_init(params, kwargs, match):
  with pytest.raises(ValueError, match=match):
    ours.adam_mini(1e-2, **kwargs).init(params)


NAN = float("nan")


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(learning_rate=NAN), ValueError, "learning_rate"),
    (dict(learning_rate=None), TypeError, "learning_rate"),
    (dict(b1=1.0), ValueError, "b1"),
    (dict(b2=-0.1), ValueError, "b2"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(weight_decay=-1e-2), ValueError, "weight_decay"),
    (dict(dim=0, n_heads=2), ValueError, "dim"),
    (dict(dim=8.0, n_heads=2), TypeError, "dim"),
    (dict(dim=8, n_heads=3), ValueError, "n_heads"),
    (dict(dim=8), ValueError, "n_heads"),
    (dict(dim=8, n_heads=4, n_kv_heads=3), ValueError, "n_kv_heads"),
    (dict(n_kv_heads=2), ValueError, "n_kv_heads"),
    (dict(layout="jax"), ValueError, "layout"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, error, name):
  cm.assert_raises_naming(ours.adam_mini, dict(dict(learning_rate=1e-2), **kwargs), error, name)
