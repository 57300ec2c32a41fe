r"""Adam-mini: Adam with one second-moment value per block of parameters.

Adam keeps a second moment per parameter. Adam-mini (Zhang et al., 2024)
splits every leaf into blocks where the Hessian is (nearly) block diagonal
-- an attention head of the query and key projections, an output neuron of
the other linear layers, a token of the embedding, the whole of a norm's
scale -- and keeps one EMA of the blocks' mean squared gradient, so the
second moment shrinks from the model's size to the number of blocks. The
blocks come from the parameters' names, as in the reference.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from jaxopt_notes.core import base, combine, validation
from jaxopt_notes.core import tree as tree_lib
from jaxopt_notes.optimizers._common import LR, Num, descent_step
from jaxopt_notes.transforms import masking, scaling

__all__ = ["ScaleByAdamMiniState", "adam_mini", "adam_mini_partition", "scale_by_adam_mini"]

_KINDS = ("adam", "heads", "embed", "neuron", "block")
_LAYOUTS = ("torch", "flax")

# The reference's keyword sets (adam-mini 1.1.1), matched as substrings of
# the lower-cased name; checked in this order, the first hit wins.
_ADAM_NAMES = ("bias",)
_QK_NAMES = ("k_proj", "q_proj", "wq", "wk", "query", "key")
_EMBED_NAMES = ("embed", "embd", "wte")
_OUTPUT_NAMES = ("lm_head", "output", "final_layer")
_V_NAMES = ("v_proj", "wv", "value")
_ATTN_PROJ_NAMES = ("o_proj", "wo", "attn.proj")
_MLP_NAMES = ("feed_forward", "linear", "mlp")
_NO_DECAY_NAMES = ("norm", "ln", "bias")

Partition = Union[Any, Callable[[base.Params], Any]]


class ScaleByAdamMiniState(NamedTuple):
  """State of :func:`scale_by_adam_mini`."""

  count: jax.Array  # type: ignore[assignment]  # int32 scalar, steps taken
  mu: base.Updates  # EMA of g (decay b1), shaped like the params
  nu: base.Updates  # per leaf, EMA (decay b2) of the mean g^2 of each block: one value per block, see `_View`


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _path_name(path: Any) -> str:
  """A pytree path as torch's ``named_parameters`` spells it: keys joined by ``.``, lower-cased."""
  return ".".join(_key_name(k) for k in path).lower()


def _label_of(name: str) -> str:
  def has(words):
    return any(w in name for w in words)

  if has(_ADAM_NAMES):
    return "adam"
  if has(_QK_NAMES):
    return "heads"
  if has(_EMBED_NAMES):
    return "embed"
  if has(_OUTPUT_NAMES + _V_NAMES + _ATTN_PROJ_NAMES + _MLP_NAMES):
    return "neuron"
  return "block"


def adam_mini_partition(params: Any) -> Any:
  """The reference's blocks for ``params``: a pytree of labels, one per leaf.

  Each leaf's name is its path's keys joined by ``.`` and lower-cased
  (``{"layers": [{"q_proj": {"weight": w}}]}`` gives ``layers.0.q_proj.weight``),
  then matched as a substring, first hit wins:

  - ``"adam"`` (one value per entry): ``bias``;
  - ``"heads"`` (one per attention head): ``k_proj q_proj wq wk query key``;
  - ``"embed"`` (one per token, a row of the table): ``embed embd wte``;
  - ``"neuron"`` (one per output neuron): ``lm_head output final_layer``,
    ``v_proj wv value``, ``o_proj wo attn.proj``, ``feed_forward linear mlp``;
  - ``"block"`` (one for the whole leaf): anything else (norms, ``"w"``).

  These are the keyword lists of the reference, ``adam_mini.Adam_mini``
  1.1.1 (Zhang et al., 2024, arXiv:2406.16793), in its order;
  ``tests/contrib/test_adam_mini.py`` checks the labels of Hugging Face,
  Meta-Llama and GPT-2 names against the kinds the reference's own state
  shows. Edit the result (or write your own) and pass it as ``partition``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxopt_notes.contrib import adam_mini_partition
    >>> params = {"wte": jnp.ones((5, 4)), "h": [{"attn": {"q_proj": jnp.ones((4, 4))}, "ln_1": jnp.ones(4)}]}
    >>> adam_mini_partition(params)
    {'h': [{'attn': {'q_proj': 'heads'}, 'ln_1': 'block'}], 'wte': 'embed'}
  """
  return jax.tree_util.tree_map_with_path(lambda path, _: _label_of(_path_name(path)), params)


def _decay_mask(params: Any) -> Any:
  # The reference's groups: no decay where the name says norm, ln or bias.
  return jax.tree_util.tree_map_with_path(
      lambda path, _: not any(w in _path_name(path) for w in _NO_DECAY_NAMES), params
  )


class _View(NamedTuple):
  """How one leaf is cut into blocks: a view of it, and the view's axes each block spans."""

  shape: tuple[int, ...]
  rows: Optional[tuple[int, int]]  # heads: the (lead, rest) matrix viewed, lead = the input axis in flax
  n_blocks: int  # heads only
  transpose: bool  # heads in flax layout: the output axes come last
  axes: tuple[int, ...]  # axes of the view reduced into one block

  def to_view(self, x):
    if self.rows is None:
      return x
    x = jnp.reshape(x, self.rows)
    return jnp.reshape(x.T if self.transpose else x, (self.n_blocks, -1))

  def from_view(self, x):
    if self.rows is None:
      return x
    if self.transpose:
      return jnp.reshape(jnp.reshape(x, self.rows[::-1]).T, self.shape)
    return jnp.reshape(x, self.shape)

  def reduce(self, x):
    return jnp.mean(self.to_view(x), axis=self.axes, keepdims=True)


def _view(label: str, shape: tuple[int, ...], flax: bool, head_numel: Optional[int], where: str) -> _View:
  ndim = len(shape)
  if label == "heads":
    size = math.prod(shape)
    if head_numel is None:
      raise ValueError(f"`dim` and `n_heads` must be given: leaf {where!r} is cut into attention heads")
    if size % head_numel:
      raise ValueError(
          f"leaf {where!r} (shape {shape}) cannot be cut into heads of `dim` * `dim` / `n_heads` = "
          f"{head_numel} entries; got {size} entries"
      )
    lead = shape[0] if ndim else 1
    return _View(shape, (lead, size // lead), size // head_numel, flax, (1,))
  if label == "adam":
    return _View(shape, None, 0, False, ())
  if label == "block":
    return _View(shape, None, 0, False, tuple(range(ndim)))
  # A token is a row of the table in both layouts; a neuron is an output axis,
  # torch's first, flax's last.
  keep = ndim - 1 if (flax and label == "neuron") else 0
  return _View(shape, None, 0, False, tuple(i for i in range(ndim) if i != keep))


def _check_size(name: str, value: Any) -> Optional[int]:
  if value is None:
    return None
  return validation.check_shape_int(name, value, "the blocks' shapes")


def scale_by_adam_mini(
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    *,
    dim: Optional[int] = None,
    n_heads: Optional[int] = None,
    n_kv_heads: Optional[int] = None,
    layout: str = "torch",
    partition: Optional[Partition] = None,
) -> base.GradientTransformation:
  r"""Adam-mini's scaling: Adam's ratio with one second moment per block.

  For each block :math:`B` of a leaf (see :func:`adam_mini` for the blocks):

  .. math::
     m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
     v_{t,B} = \beta_2 v_{t-1,B} + (1-\beta_2)\, \frac{1}{|B|} \sum_{i \in B} g_{t,i}^2,
     \qquad u_{t,i} = \frac{\hat m_{t,i}}{\sqrt{\hat v_{t,B(i)}} + \epsilon}

  with :math:`\hat m_t, \hat v_t` divided by :math:`1-\beta^t`. Zhang, Chen,
  Li, Ding, Wu, Kingma, Ye, Luo & Sun, "Adam-mini: Use Fewer Learning Rates
  To Gain More", 2024 (arXiv:2406.16793). ``state.nu`` holds one value per
  block, kept with the leaf's rank (``(rows, 1)`` per output neuron in
  torch's layout, ``(1, ..., 1)`` for a whole-leaf block, ``(heads, 1)`` per
  head); ``state.mu`` is full size. Checked, inside :func:`adam_mini`,
  against the reference ``adam_mini.Adam_mini`` (float64 ``rtol`` 1e-12).

  Args:
    b1: decay of the first moment in ``[0, 1)`` (default 0.9).
    b2: decay of the second moment in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    dim: the model's hidden size; with ``n_heads`` it sets a head's
      ``dim * dim / n_heads`` entries. Needed only where a leaf is labelled
      ``"heads"`` (default ``None``).
    n_heads: the number of query heads (default ``None``).
    n_kv_heads: key/value heads (GQA), dividing ``n_heads``; only checked,
      as in the reference: a GQA key projection simply has fewer heads'
      worth of rows (default ``None``: ``n_heads``).
    layout: ``"torch"`` (default): matrices are ``(out, in)``, a
      ``Linear.weight``; ``"flax"``: ``(in, ..., out)``, a ``Dense`` kernel.
    partition: each leaf's label (``"adam" "heads" "embed" "neuron"
      "block"``) as a pytree like the params or a function of them, called
      on the params at ``init`` and on the updates at ``update`` (default
      ``None``: :func:`adam_mini_partition`'s name rules).

  Examples:
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes.contrib as am
    >>> tx = am.scale_by_adam_mini()
    >>> params = {"mlp": jnp.zeros((3, 2)), "norm": jnp.zeros(4)}
    >>> {k: v.shape for k, v in tx.init(params).nu.items()}  # per output row; one for the norm
    {'mlp': (3, 1), 'norm': (1,)}
  """
  validation.check_unit_interval("b1", b1)
  validation.check_unit_interval("b2", b2)
  validation.check_non_negative("eps", eps)
  dim = _check_size("dim", dim)
  n_heads = _check_size("n_heads", n_heads)
  n_kv_heads = _check_size("n_kv_heads", n_kv_heads)
  if (dim is None) != (n_heads is None):
    raise ValueError(f"`dim` and `n_heads` must be given together; got dim={dim!r}, n_heads={n_heads!r}")
  head_numel = None
  if dim is not None and n_heads is not None:
    if (dim * dim) % n_heads:
      raise ValueError(f"`n_heads` must divide `dim` * `dim` = {dim * dim}; got {n_heads!r}")
    head_numel = dim * dim // n_heads
  if n_kv_heads is not None and (n_heads is None or n_heads % n_kv_heads):
    raise ValueError(f"`n_kv_heads` must divide `n_heads` ({n_heads!r}); got {n_kv_heads!r}")
  if layout not in _LAYOUTS:
    raise ValueError(f"`layout` must be one of {_LAYOUTS}; got {layout!r}")

  def views(tree):
    treedef = jax.tree.structure(tree)
    labels = adam_mini_partition(tree) if partition is None else partition
    labels = labels(tree) if callable(labels) else labels
    try:
      flat_labels = treedef.flatten_up_to(labels)
    except (ValueError, TypeError) as err:
      raise ValueError(f"`partition` must have the params' structure {treedef}; got {labels!r}") from err
    out = []
    for (path, leaf), label in zip(jax.tree_util.tree_leaves_with_path(tree), flat_labels):
      where = _path_name(path)
      if label not in _KINDS:
        raise ValueError(f"`partition` labels must be one of {_KINDS}; got {label!r} at {where!r}")
      out.append(_view(label, tuple(jnp.shape(leaf)), layout == "flax", head_numel, where))
    return treedef, out

  def init_fn(params):
    validation.check_float_params(params)
    treedef, vs = views(params)
    nu = [jnp.zeros_like(v.reduce(p)) for v, p in zip(vs, treedef.flatten_up_to(params))]
    return ScaleByAdamMiniState(
        count=jnp.zeros([], jnp.int32), mu=tree_lib.tree_zeros_like(params), nu=treedef.unflatten(nu),
    )

  def update_fn(updates, state, params=None):
    combine.check_updates_match_params(updates, params, state=state.mu, state_name="state.mu")
    del params
    treedef, vs = views(updates)
    squares = [v.reduce(tree_lib.abs_sq(g)) for v, g in zip(vs, treedef.flatten_up_to(updates))]
    mu = tree_lib.tree_update_moment(updates, state.mu, b1, 1)
    nu = tree_lib.tree_update_moment(treedef.unflatten(squares), state.nu, b2, 1)
    count = tree_lib.safe_increment(state.count)
    mu_hat = treedef.flatten_up_to(tree_lib.bias_correction(mu, b1, count))
    nu_hat = treedef.flatten_up_to(tree_lib.bias_correction(nu, b2, count))
    out = [v.from_view(v.to_view(m) / (jnp.sqrt(s) + eps)) for v, m, s in zip(vs, mu_hat, nu_hat)]
    return treedef.unflatten(out), ScaleByAdamMiniState(count=count, mu=mu, nu=nu)

  return base.GradientTransformation(init_fn, update_fn)


def adam_mini(
    learning_rate: LR,
    b1: Num = 0.9,
    b2: Num = 0.999,
    eps: Num = 1e-8,
    weight_decay: Num = 0.0,
    *,
    dim: Optional[int] = None,
    n_heads: Optional[int] = None,
    n_kv_heads: Optional[int] = None,
    layout: str = "torch",
    partition: Optional[Partition] = None,
    mask: Optional[masking.Mask] = None,
) -> base.GradientTransformationExtraArgs:
  r"""Adam-mini: AdamW with one second moment per block of parameters.

  .. math::
     \theta_t = \theta_{t-1} - \eta_t \left(
       \frac{\hat m_t}{\sqrt{\hat v_{t,B}} + \epsilon} + \lambda \theta_{t-1} \right)

  with :math:`v_{t,B}` the EMA of block :math:`B`'s mean squared gradient
  (:func:`scale_by_adam_mini`). Zhang et al., "Adam-mini: Use Fewer Learning
  Rates To Gain More", 2024 (arXiv:2406.16793). The blocks, by the leaf's
  label (:func:`adam_mini_partition`: the reference's name rules, or
  ``partition``):

  - ``"heads"``: the leaf flattened into heads of ``dim * dim / n_heads``
    entries, one value each (torch's ``(out, in)`` rows taken in order; in
    the ``"flax"`` layout the leaf is read as ``(in, rest)`` and transposed
    first, so a ``(dim, n_heads * hd)`` or ``(dim, n_heads, hd)`` kernel is
    cut by head too);
  - ``"embed"``: one per row (token) of the ``(vocab, features)`` table, in
    both layouts (``nn.Embedding`` and flax's ``nn.Embed`` agree);
  - ``"neuron"``: one per output neuron, the first axis in ``"torch"``, the
    last in ``"flax"`` (a ``Dense`` kernel is ``(in, out)``): the mean runs
    over all other axes;
  - ``"block"``: one for the whole leaf; ``"adam"``: one per entry (Adam).

  Flax's names differ from torch's (``Dense_0/kernel``, ``LayerNorm_0/scale``):
  name the modules as the reference expects or pass ``partition``. Decay
  skips, by default, names containing ``norm``, ``ln`` or ``bias`` (the
  reference's rule); ``mask`` replaces it. Chain:
  :func:`scale_by_adam_mini`, ``add_decayed_weights(weight_decay, mask)``,
  the step. Defaults are the reference's (its README: AdamW's values;
  ``dim``, ``n_heads``, ``n_kv_heads`` from the model).

  Checked against ``adam_mini.Adam_mini`` (1.1.1, single process) by
  ``tests/contrib/test_adam_mini.py``: 50-step trajectories on a small
  transformer's named params, both name styles, GQA, weight decay, the
  flax layout (transposed) and a relabelled partition; float64 to
  ``rtol`` 1e-12 (measured 2.4e-15 apart), float32 to ``rtol`` 1e-4 and
  ``atol`` 3e-5 (measured 9.4e-6). Deliberate differences: the
  arguments are checked when it is built; ``dim``/``n_heads`` have no
  defaults (the reference's 2048/32) and are needed only for ``"heads"``
  leaves; a ``"neuron"``/``"embed"`` leaf of rank other than 2 is reduced
  over its other axes (the reference fails on it); ``learning_rate=None``
  is refused and a schedule is allowed. Under ``inject_hyperparams``,
  ``dim``, ``n_heads``, ``n_kv_heads`` and a function ``partition`` or
  ``mask`` go in ``static_args``.

  Args:
    learning_rate: ``eta``, a float or a schedule.
    b1: decay of the first moment in ``[0, 1)`` (default 0.9).
    b2: decay of the second moment in ``[0, 1)`` (default 0.999).
    eps: added after the root (default 1e-8).
    weight_decay: ``lambda >= 0``, decoupled, scaled by ``eta`` (default 0.0).
    dim: the hidden size (default ``None``), see :func:`scale_by_adam_mini`.
    n_heads: query heads (default ``None``).
    n_kv_heads: key/value heads, dividing ``n_heads`` (default ``None``).
    layout: ``"torch"`` (default, ``(out, in)``) or ``"flax"`` (``(in, out)``).
    partition: labels per leaf, a pytree or a function of the params
      (default ``None``: the name rules).
    mask: which leaves to decay (booleans or a function of the params);
      ``None``: all but names with ``norm``, ``ln`` or ``bias`` (default).

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> import jaxopt_notes.contrib as am
    >>> params = {"q_proj": jnp.ones((4, 4)), "mlp": jnp.ones((3, 4)), "norm": jnp.ones(4)}
    >>> f = lambda p: sum(jnp.sum((x - 0.5) ** 2) for x in jax.tree.leaves(p))
    >>> tx = am.adam_mini(0.05, dim=4, n_heads=2)
    >>> state = tx.init(params)
    >>> for _ in range(20):
    ...   updates, state = tx.update(jax.grad(f)(params), state, params)
    ...   params = jn.apply_updates(params, updates)
    >>> print(f"{float(f(params)):.4f}", state[0].nu["q_proj"].shape)  # from 8.0; two heads
    0.5882 (2, 1)
  """
  validation.check_learning_rate(learning_rate)
  if not callable(weight_decay):
    validation.check_non_negative("weight_decay", weight_decay)
  return combine.chain(
      scale_by_adam_mini(
          b1, b2, eps, dim=dim, n_heads=n_heads, n_kv_heads=n_kv_heads, layout=layout, partition=partition
      ),
      scaling.add_decayed_weights(weight_decay, _decay_mask if mask is None else mask),
      descent_step(learning_rate),
  )
