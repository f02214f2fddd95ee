"""The one shared attention path: projections, heads, batching; kinds do the per-head math.

An attention *kind* (dense, chunked, LSH, FAVOR+, block-sparse) is an `AttentionKind`: a
plain object that implements exactly one of `attend` (ONE (batch element, head) pair's
q/k/v of shape (L, d_head) to an output of the same shape) or `attend_batched` (all pairs
at once, (B, H, L, d_head)); the base class derives the other one, by `vmap_pairs` (the
family's one batching loop) or by running `attend_batched` on a (1, 1) batch. `Attention`
is the only Layer: it projects x (B, L, d_model) to q/k/v, splits heads, calls the kind's
`attend_batched`, merges heads, projects back and applies dropout. So no kind contains a
batching loop of its own.

  >>> layer = Attention(MyKind(), d_model=64, n_heads=4)
  >>> weights, state = layer.init(ShapeDtype((2, 10, 64)))
  >>> y, state = layer.pure_fn(x, weights, state, rng=jax.random.key(1))   # (2, 10, 64)

With `use_mask=True` the layer takes and returns `(x, mask)`, mask (B, L) bool with
True = real token. In predict mode x is (B, L_new, d_model), first the whole prompt and
then one token per call; the kind keeps its caches in state (leading (B, H) axes), sized
by the layer's `max_len` (a longer single call raises; decoding past the end raises when
run eagerly and gives NaN outputs under jit, where no Python error is possible).

Masking convention (all kinds): masked logits get the finite `large_negative`, never -inf.
A query that sees no valid key at all (e.g. a padding query at position 0 of a causal,
left-padded sequence) outputs exactly 0 in `reference.py`, dense and chunked attention;
other kinds must at least stay finite there. Tests compare only rows that see a key.

Contract notes (stable; helpers B and C code against it):
  - `attend(q, k, v, mask, state, rng, mode)` sees ONE (batch, head) pair; q is not
    pre-scaled; `rng` is None when the layer got no rng.
  - `attend_batched` takes (B, H, L, d_head) arrays, mask (B, Lk) or None, state with
    leading (B, H) axes, rng a (B, H) key array or None.
  - A kind overrides exactly one of the two (checked when the class is defined).
  - `init_state(batch_size, n_heads, length, d_head, dtype, mode)` returns ONE pair's state.
  - `check_length(length, mode)` (optional hook) raises a clear ValueError for bad lengths.
  - An `attend_batched` that needs per-head values shared by the batch uses `vmap_pairs`
    (the one batching loop) rather than its own vmaps.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from plait.layers import initializers
from plait.layers.attention import rotary as rotary_lib
from plait.layers.base import Layer
from plait.layers.chunked_map import chunked_map
from plait.layers.core import check_mode, dropout


def on_gpu():
  """Whether what is traced here is lowered for a GPU.

  True on JAX's GPU backend, and where an abstract GPU device is in scope
  (`jax.sharding.use_abstract_mesh`): that is how CPU tests lower the Pallas kernels for
  Triton (tests/gpu_lowering.py), as JAX's own Pallas lowering does.
  """
  device = jax.sharding.get_abstract_mesh().abstract_device
  return (device.platform if device is not None else jax.default_backend()) == 'gpu'


def kernel_implementation(name, requested, dtype, fits, fits_text, half_only=True):
  """The path a kind with a Pallas kernel takes: 'xla', 'pallas' or 'interpret'.

  `requested` is the kind's `implementation=`: 'xla' and 'interpret' are taken as asked;
  'pallas' is checked (a GPU, and `fits`: the kernel takes these sizes and dtype; else a
  ValueError naming `name` and `fits_text`, what the kernel takes and what it got); None
  (auto) takes the kernel on a GPU for bfloat16/float16 inputs it fits (any dtype it fits
  with half_only=False), else 'xla'.

    >>> kernel_implementation('BlockSparse', None, jnp.bfloat16, True, '...')  # on a CPU
    'xla'
  """
  if requested in ('xla', 'interpret'):
    return requested
  gpu = on_gpu()
  if requested == 'pallas':
    if not gpu:
      raise ValueError(f"{name}: implementation='pallas' needs a GPU, but JAX's backend "
                       f"is {jax.default_backend()!r}; use implementation=None (auto), "
                       "'xla', or 'interpret' (tests).")
    if not fits:
      raise ValueError(f"{name}: implementation='pallas' takes {fits_text}. Use "
                       "implementation=None (auto) or 'xla'.")
    return 'pallas'
  half = jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) or not half_only
  return 'pallas' if gpu and half and fits else 'xla'


def large_negative(dtype):
  """A finite 'minus infinity' for masked logits in `dtype`.

  Finite (not -inf) so that a row whose keys are all masked gives a uniform softmax
  instead of NaN, and so gradients through masked entries stay finite; 0.7 * min so that
  adding another logit-sized number cannot overflow to -inf.
  """
  return 0.7 * float(jnp.finfo(dtype).min)


class ProjectionWeights(NamedTuple):
  """One projection's weights: kernel (d_in, d_out) and bias (d_out,) or None."""
  kernel: Any
  bias: Any = None


class AttentionWeights(NamedTuple):
  """`Attention`'s weights; tree paths read `.../q/kernel`, `.../o/bias`.

  Each field is a `ProjectionWeights`; k is None for kinds with `shared_qk` (no key
  projection). The field order is the flatten order.
  """
  q: ProjectionWeights
  k: Any
  v: ProjectionWeights
  o: ProjectionWeights


class AttentionKind:
  """The per-head algorithm of an attention variant (a plain object, not a Layer).

  Subclasses override exactly one of `attend` (one (batch, head) pair; the base class
  vmaps it over all pairs) or `attend_batched` (all pairs at once, e.g. dense attention
  for cuDNN; the base class runs it on a (1, 1) batch for one pair), and, if they keep
  state (caches, hashes), `init_state`.
  """

  shared_qk = False  # True (LSH): no K projection; `attend` gets k=None and uses q as keys.
  name = None        # Short name for the layer's repr; defaults to the class name.
  # True when a real token's output depends on the real tokens alone (their vectors, in
  # order), not on their positions or on the padding between them (dense, FAVOR+, LSH
  # attention; not position-based kinds such as chunked or block-sparse): then an encoder may
  # gather the real tokens into a shorter sequence exactly (plait.models.compaction).
  compactable = False

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    own = [m for m in ('attend', 'attend_batched')
           if getattr(cls, m) is not getattr(AttentionKind, m)]
    if len(own) != 1:
      raise TypeError(f'{cls.__name__}: an AttentionKind overrides exactly one of `attend` '
                      '(one (batch, head) pair) and `attend_batched` (all pairs at once); '
                      f'it overrides {" and ".join(own) or "neither"}.')

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    """State pytree for ONE (batch, head) pair; the shared path adds the (B, H) axes.

    `length` is the input length, or `max_len` in predict mode (the cache size).
    `batch_size`/`n_heads` are given for information only. Default: no state.
    """
    del batch_size, n_heads, length, d_head, dtype, mode
    return ()

  def attend(self, q, k, v, mask, state, rng, mode):
    """One (batch, head): returns (out (Lq, d_head), new_state).

    Args:
      q: (Lq, d_head) queries, NOT pre-scaled (the kind applies 1/sqrt(d_head)).
      k: (Lk, d_head) keys, or None when `shared_qk`.
      v: (Lk, d_head) values.
      mask: (Lk,) bool key validity (True = real token), or None (all valid).
      state: as returned by `init_state` (this pair's slice).
      rng: a key distinct per batch element and head, or None.
      mode: 'train' | 'eval' | 'predict'.

    Default (for kinds that implement `attend_batched`): that on a (1, 1) batch.
    """
    add = lambda t: None if t is None else t[None, None]
    out, new_state = self.attend_batched(
        add(q), add(k), add(v), None if mask is None else mask[None],
        jax.tree_util.tree_map(add, state), add(rng), mode)
    return out[0, 0], jax.tree_util.tree_map(lambda s: s[0, 0], new_state)

  def attend_batched(self, q, k, v, mask, state, rng, mode):
    """All (batch, head) pairs: returns (out (B, H, Lq, d_head), new_state).

    Arguments as `attend` with leading axes: q/k/v (B, H, L, d_head), mask (B, Lk) or
    None, state with leading (B, H) axes, rng a (B, H) key array or None.
    Default (for kinds that implement `attend`): `attend` on every pair by `vmap_pairs`.
    """
    def one(q1, k1, v1, mask1, state1, rng1, _):
      return self.attend(q1, k1, v1, mask1, state1, rng1, mode)
    return vmap_pairs(one, q, k, v, mask, state, per_pair=rng)

  def check_length(self, length, mode):
    """Hook: raise ValueError with a clear message if this kind can't take `length`."""
    del length, mode

  def __repr__(self):
    return self.name or type(self).__name__


class RotaryState(NamedTuple):
  """A rotary layer's predict-mode state: the kind's state and the next position (B, H)."""
  kind: Any
  next_position: Any


class Attention(Layer):
  """Multi-head attention around any `AttentionKind`: (B, L, d_model) -> (B, L, d_model).

  Args:
    kind: the per-head algorithm (an AttentionKind).
    d_model: input and output feature size.
    n_heads: number of heads.
    d_head: per-head size (default d_model // n_heads).
    dropout: dropout rate on the output (train mode only).
    use_mask: if True, n_in = n_out = 2: (x, mask) -> (y, mask), mask (B, L) bool.
    head_chunk_size: if set, heads are processed in groups of this many (`chunked_map`),
      each group projecting its own q/k/v inside the loop, so only one group's q/k/v and
      attention intermediates are alive at a time, in the forward and (by recomputation)
      the backward pass: less memory for some recomputation.
    max_len: predict-mode cache length (the longest prompt + generation).
    use_bias: biases in the q/k/v and output projections.
    rotary: rotate q and k by their positions after the projections (rotary position
      embeddings, `rotary.py`): scores depend on the distance between query and key only.
      Positions count from 0 at the input's first row (in predict mode, from the first
      prompt token). Needs an even d_head.
    mode: 'train' | 'eval' | 'predict'.
    name: repr/error name (default `Attention_<kind>`).

  Weights: `AttentionWeights(q, k, v, o)`, each a `ProjectionWeights(kernel, bias)` (bias
  None without `use_bias`); k is None when the kind has `shared_qk`. q/k/v kernel:
  (d_model, n_heads * d_head); o kernel: (n_heads * d_head, d_model).
  State: the kind's per-pair state with leading (B, H) axes (`()` if it keeps none); with
  rotary in predict mode a `RotaryState(kind=that, next_position=(B, H) int32)`.
  """

  def __init__(self, kind, d_model, n_heads=8, d_head=None, dropout=0.0, use_mask=False,
               head_chunk_size=None, max_len=2048, use_bias=True, mode='train', name=None,
               rotary=False):
    n_io = 2 if use_mask else 1
    super().__init__(n_in=n_io, n_out=n_io, name=name or f'Attention_{kind!r}')
    if not isinstance(kind, AttentionKind):
      raise TypeError(f'{self.name}: kind must be an AttentionKind, got {type(kind).__name__}.')
    if n_heads < 1 or d_model < 1:
      raise ValueError(f'{self.name}: need d_model >= 1 and n_heads >= 1, got d_model={d_model},'
                       f' n_heads={n_heads}.')
    if d_head is None:
      if d_model % n_heads:
        raise ValueError(f'{self.name}: d_model={d_model} is not divisible by n_heads={n_heads}; '
                         'pass d_head explicitly or change n_heads.')
      d_head = d_model // n_heads
    if head_chunk_size is not None and (head_chunk_size < 1 or n_heads % head_chunk_size):
      raise ValueError(f'{self.name}: head_chunk_size={head_chunk_size} must divide '
                       f'n_heads={n_heads}.')
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f'{self.name}: dropout must be in [0, 1), got {dropout}.')
    if not isinstance(rotary, bool):
      raise TypeError(f'{self.name}: rotary must be True or False, got {rotary!r}.')
    if rotary and d_head % 2:
      raise ValueError(f'{self.name}: rotary positions rotate pairs of features, so d_head '
                       f'must be even; got d_head={d_head} (d_model={d_model}, '
                       f'n_heads={n_heads}).')
    self._rotary = rotary
    self._kind, self._d_model, self._n_heads, self._d_head = kind, d_model, n_heads, d_head
    self._dropout, self._use_mask, self._use_bias = dropout, use_mask, use_bias
    self._head_chunk_size, self._max_len = head_chunk_size, max_len
    self._mode = check_mode(mode, self.name)

  kind = property(lambda self: self._kind)
  d_model = property(lambda self: self._d_model)
  n_heads = property(lambda self: self._n_heads)
  d_head = property(lambda self: self._d_head)
  max_len = property(lambda self: self._max_len)
  mode = property(lambda self: self._mode)
  rotary = property(lambda self: self._rotary)

  @property
  def compactable(self):
    """Whether gathering the real tokens to the front changes no output (see
    `AttentionKind.compactable`): never with rotary positions, which are the row indices."""
    return self._kind.compactable and not self._rotary

  # ----- init -----
  def init_weights_and_state(self, input_signature, rng):
    x_sig = input_signature[0] if self._use_mask else input_signature
    self._check_x_shape(x_sig.shape)
    batch, length = x_sig.shape[:2]
    d_inner = self._n_heads * self._d_head
    rq, rk, rv, ro = jax.random.split(rng, 4)
    weights = AttentionWeights(
        q=self._projection(rq, self._d_model, d_inner),
        k=None if self._kind.shared_qk else self._projection(rk, self._d_model, d_inner),
        v=self._projection(rv, self._d_model, d_inner),
        o=self._projection(ro, d_inner, self._d_model))
    cache_len = self._max_len if self._mode == 'predict' else length
    one = self._kind.init_state(batch, self._n_heads, cache_len, self._d_head, x_sig.dtype,
                                self._mode)
    state = jax.tree_util.tree_map(
        lambda s: jnp.broadcast_to(s, (batch, self._n_heads) + jnp.shape(s)), one)
    if self._rotary and self._mode == 'predict':
      state = RotaryState(state, jnp.zeros((batch, self._n_heads), jnp.int32))
    return weights, state

  def _projection(self, rng, d_in, d_out):
    kernel = initializers.glorot_uniform(rng, (d_in, d_out))
    bias = initializers.zeros(None, (d_out,)) if self._use_bias else None
    return ProjectionWeights(kernel, bias)

  # ----- forward -----
  def forward(self, inputs, weights, state, rng):
    x, mask = inputs if self._use_mask else (inputs, None)
    self._check_x_shape(x.shape)
    if mask is not None:
      if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f'{self.name}: mask must have shape (batch, length) = '
                         f'{tuple(x.shape[:2])}, got {tuple(mask.shape)}.')
      mask = mask.astype(jnp.bool_)
    if self._mode == 'predict' and x.shape[1] > self._max_len:
      raise ValueError(f'{self.name}: predict-mode input of length {x.shape[1]} exceeds '
                       f'max_len={self._max_len}; build the layer with a larger max_len.')
    self._kind.check_length(x.shape[1], self._mode)
    wq, wk, wv, wo = weights
    keys, rng_dropout = attend_keys(rng, x.shape[0], self._n_heads)
    positions, state = self._positions(x.shape[1], state)
    hc = self._head_chunk_size
    if hc is None or hc >= self._n_heads:
      q, k, v = self._qkv(x, (wq, wk, wv), self._n_heads, positions)
      out, new_state = self._kind.attend_batched(q, k, v, mask, state, keys, self._mode)
    else:
      out, new_state = self._attend_groups(x, (wq, wk, wv), mask, state, keys, positions)
    if positions is not None and self._mode == 'predict':
      new_state = RotaryState(new_state, jnp.full((x.shape[0], self._n_heads),
                                                  positions[-1] + 1, jnp.int32))
    y = _project(self._merge_heads(out).astype(x.dtype), wo)
    y = self._apply_dropout(y, rng_dropout)
    return ((y, inputs[1]) if self._use_mask else y), new_state

  def _positions(self, length, state):
    """(positions (length,) int32 or None without rotary, the kind's state)."""
    if not self._rotary:
      return None, state
    if self._mode != 'predict':
      return jnp.arange(length, dtype=jnp.int32), state
    if not isinstance(state, RotaryState):
      raise TypeError(f'{self.name}: a rotary layer in predict mode keeps a RotaryState '
                      f'(from its init), got {type(state).__name__}.')
    start = jnp.ravel(state.next_position)[0]   # every pair is at the same position
    return start + jnp.arange(length, dtype=jnp.int32), state.kind

  def _qkv(self, x, qkv_weights, n_heads, positions):
    """(q, k or None, v), each (B, n_heads, L, d_head); q and k rotated when rotary."""
    wq, wk, wv = qkv_weights
    q = _heads(x, wq, n_heads, self._d_head, positions)
    k = None if self._kind.shared_qk else _heads(x, wk, n_heads, self._d_head, positions)
    return q, k, _heads(x, wv, n_heads, self._d_head)

  def _check_x_shape(self, shape):
    if len(shape) != 3 or shape[-1] != self._d_model:
      raise ValueError(f'{self.name}: expected x of shape (batch, length, d_model={self._d_model}),'
                       f' got {tuple(shape)}.')

  def _merge_heads(self, t):
    """(B, H, L, d_head) -> (B, L, H * d_head)."""
    b, h, l, d = t.shape
    return t.transpose(0, 2, 1, 3).reshape(b, l, h * d)

  def _apply_dropout(self, y, rng):
    if self._mode != 'train':
      return y
    return dropout(y, self._dropout, rng, who=self.name)

  def _attend_groups(self, x, qkv_weights, mask, state, keys, positions):
    """Head chunking: one group of heads at a time, each projecting its own q/k/v.

    The loop maps over the group's columns of the q/k/v weights (sliced here, so the
    weights pytree is unchanged) with x as a shared differentiated input, so full-width
    q/k/v, their per-group copies and their cotangents never exist: a group's q/k/v are
    made (and, in the backward pass, recomputed) inside its step. `chunked_map`'s backward
    recomputes each group's attention instead of keeping every group's intermediates, and
    no buffer outlives (or precedes) its data, so in a reversible stack training memory
    holds one group of one layer at a time. Returns (out (B, H, L, d_head), new_state).
    """
    hc, n_groups = self._head_chunk_size, self._n_heads // self._head_chunk_size
    def to_groups(t):   # (B, H, ...) -> (G, B, hc, ...)
      t = t.reshape((t.shape[0], n_groups, hc) + t.shape[2:])
      return jnp.moveaxis(t, 1, 0)
    def from_groups(t):  # (G, B, hc, ...) -> (B, H, ...)
      t = jnp.moveaxis(t, 0, 1)
      return t.reshape((t.shape[0], self._n_heads) + t.shape[3:])
    def weight_groups(t):  # kernel (d_in, H * d_head) -> (G, d_in, hc * d_head); bias likewise.
      return jnp.moveaxis(t.reshape(t.shape[:-1] + (n_groups, -1)), -2, 0)
    grouped = (jax.tree_util.tree_map(weight_groups, qkv_weights),
               jax.tree_util.tree_map(to_groups, (state, keys)))
    kind, mode = self._kind, self._mode
    def one_group(x, group_mask, args, i):
      del i
      gweights, (gstate, gkeys) = args
      gq, gk, gv = self._qkv(x, gweights, hc, positions)
      return kind.attend_batched(gq, gk, gv, group_mask, gstate, gkeys, mode)
    out, new_state = chunked_map(one_group, grouped, x, mask)
    return jax.tree_util.tree_map(from_groups, (out, new_state))


def vmap_pairs(fn, q, k, v, mask, state, per_pair=None, per_head=None):
  """The family's one batching loop: fn on every (batch, head) pair via two vmaps.

  `AttentionKind.attend_batched` runs `attend` with it; a kind's own `attend_batched` that
  needs something per head but shared by the batch (FAVOR+'s random projection per head)
  calls it instead of writing its own vmaps.
  Args:
    fn: (q1, k1, v1, mask1, state1, pair1, head1) -> (out (Lq, d), new_state1).
    q, v: (B, H, L, d_head); k: the same or None; mask: (B, Lk) or None.
    state: pytree with leading (B, H) axes.
    per_pair: pytree with leading (B, H) axes (e.g. rng keys), or None.
    per_head: pytree with a leading (H,) axis, the same for every batch element, or None.
  Returns:
    (out (B, H, Lq, d), new_state with leading (B, H)).
  """
  axis = lambda t: None if t is None else 0
  over_heads = jax.vmap(fn, in_axes=(0, axis(k), 0, None, 0, axis(per_pair), axis(per_head)))
  over_batch = jax.vmap(over_heads,
                        in_axes=(0, axis(k), 0, axis(mask), 0, axis(per_pair), None))
  return over_batch(q, k, v, mask, state, per_pair, per_head)


def attend_keys(rng, batch, n_heads):
  """An `Attention` layer's rng -> (the kind's (B, H) per-pair keys, the dropout key), or
  (None, None) without an rng."""
  if rng is None:
    return None, None
  rng_attend, rng_dropout = jax.random.split(rng)
  return per_pair_keys(rng_attend, batch, n_heads), rng_dropout


def layer_queries(layer, x, weights, rng):
  """An `Attention` layer's (B, H, L, d_head) queries of x (B, L, d_model) and the per-pair
  keys its kind gets from `rng`, as its forward makes them in train and eval mode (rotated
  when the layer is rotary; for inspection helpers)."""
  positions, _ = layer._positions(x.shape[1], ())   # pylint: disable=protected-access
  q = _heads(x, weights.q, layer.n_heads, layer.d_head, positions)
  return q, attend_keys(rng, x.shape[0], layer.n_heads)[0]


def per_pair_keys(rng, batch, n_heads):
  """A (batch, n_heads) array of keys: rng folded with the batch index, then the head index."""
  def for_batch(b):
    rb = jax.random.fold_in(rng, b)
    return jax.vmap(lambda h: jax.random.fold_in(rb, h))(jnp.arange(n_heads))
  return jax.vmap(for_batch)(jnp.arange(batch))


def _heads(x, projection, n_heads, d_head, positions=None):
  """x (B, L, d_model) projected and split: (B, n_heads, L, d_head), rotated by `positions`
  (L,) when given."""
  t = _split_heads(_project(x, projection), n_heads, d_head)
  return t if positions is None else rotary_lib.rotate(t, positions)


def _split_heads(t, n_heads, d_head):
  """(B, L, n_heads * d_head) -> (B, n_heads, L, d_head)."""
  b, l, _ = t.shape
  return t.reshape(b, l, n_heads, d_head).transpose(0, 2, 1, 3)


def _project(x, weights):
  """x @ kernel + bias for a `ProjectionWeights`."""
  y = jnp.dot(x, weights.kernel.astype(x.dtype))
  return y if weights.bias is None else y + weights.bias.astype(x.dtype)


__all__ = ['Attention', 'AttentionKind', 'AttentionWeights', 'ProjectionWeights', 'RotaryState',
           'attend_keys', 'kernel_implementation', 'large_negative', 'layer_queries', 'on_gpu',
           'per_pair_keys', 'vmap_pairs']
