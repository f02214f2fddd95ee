"""Flash-style attention over a per-query-block list of key blocks, as Pallas (Triton) GPU kernels.

One program per work row (a query block and up to `plan.width` of its key blocks; see
`block_plan.py`) walks its key blocks with an online softmax, never materializing more
than one (block, block) score tile, and writes its output and log-sum-exp: an unsplit block
straight into the (B, H, L, ...) result in the inputs' dtype, the rows of a split block as
float32 parts that are combined by log-sum-exp (gradients: summed) for those blocks alone.
The backward pass runs two kernels: dq over the same work rows, dk/dv over the transposed
ones (per key block, the query blocks that see it), recomputing the probabilities from the
saved log-sum-exp (FlashAttention-2). `sequence_major=True` runs the same kernels on
(B, L, H, d) arrays (block-sparse attention: its q, k, v come from (B, L, H, d) projections).
`rows=` runs them on a permuted sequence without permuting anything: blocks' rows are read
through the permutation and the results written back at the rows' own positions (LSH's
sorted rounds).

Masks are computed in the kernel from position vectors: key position -1 marks a padded
(invisible) key, and `causal` lets a query see only keys at positions <= its own. So the
same kernel serves any pattern whose blocks are contiguous runs of the sequence; the
positions need not be sorted (they are the original positions of a permuted sequence).

  >>> plan = block_plan(key_lists, width=8)              # static, from the pattern
  >>> out = sparse_attention(q, k, v, q_pos, k_pos, plan, causal=False)
  >>> out, lse = sparse_attention(q, k, v, q_pos, k_pos, plan, return_lse=True)
  >>> out = sparse_attention(q, None, v, q_pos, k_pos, plan, key_scale=scale)  # shared QK

The log-sum-exp is differentiable too, so attention over several key sets (e.g. LSH's
hash rounds) can be combined exactly: softmax over the rounds' lse weighs their outputs.

Two optional logit terms serve LSH (lsh/fused.py); both are off by default and then cost
nothing. `self_penalty` is subtracted from the logit of a query and the key at the same
position (a token sees itself only when nothing else is visible). `chunk_ids` (one
(B | 1, H | 1, L) int32 vector per hash round: each position's chunk in that round) with
`window=(before, after)` subtracts log(count), count = the rounds in which the key's chunk
lies within [-before, +after] chunks of the query's (the duplicate correction; it depends
on the (query, key) pair, so it is computed per pair in the kernel from these vectors).
With `rounds_folded=True` (LSH's layout: round r of head h is head h * n_rounds + r, and
every pair a program computes lies in its own round's window) the own round counts 1
without being computed, so with 2 rounds one comparison per pair remains.

Shared-QK attention (LSH) gives no key array but `key_scale`, one float32 per position:
key j is q_j * key_scale[j]. The kernels read q as the keys and multiply each score column
by its scale, so no key array exists, neither in the forward nor kept for the backward
(which turns the keys' gradient into q's and key_scale's).

Heads of any width up to 128 run: q, k, v are zero-padded to the next kernel width (16, 32,
64 or 128), which adds nothing to any logit or output, the logits are scaled by the true
width, and the output is cut back (so d_head 48, 80 or 96 costs the kernel of 64 or 128).

`interpret=True` runs the same kernels through the Pallas interpreter (CPU tests). The
XLA path of each layer is the oracle; tests compare values and gradients.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.base import large_negative
from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params

__all__ = ['LogitTerms', 'sparse_attention', 'supported']

_NEG = large_negative(jnp.float32)  # Masked logits; the log-sum-exp of a row seeing nothing.
_LOG2E = 1.4426950408889634  # Kernels work in base 2: exp(x) = exp2(x * log2(e)).
_BLOCKS = (16, 32, 64, 128)
_HEAD_DIMS = (16, 32, 64, 128)   # The kernels' widths; narrower heads are zero-padded.
# Triton (num_warps, num_stages) per kernel, measured on an H200 (see docs/attention.md).
COMPILER_PARAMS = {'fwd_kernel': (4, 2), 'dq_kernel': (4, 2), 'dkv_kernel': (4, 2)}


class LogitTerms(NamedTuple):
  """What the kernels add to q.k / sqrt(d) before the softmax (static, hashable).

  causal: mask keys after the query (by position). self_penalty: subtracted where the key's
  position equals the query's (0: none). window: (before, after) of the duplicate count,
  with n_ids chunk-id vectors (0: none). key_scale: each key's scores are multiplied by
  its entry of a per-position float32 vector (shared QK: keys = q * key_scale).
  rounds_folded: head h runs round h % n_ids, whose window holds every pair computed.
  d_head: the heads' true width when q, k, v are zero-padded to a kernel width (0: theirs);
  the logits are scaled by d_head ** -0.5.
  """
  causal: bool = False
  self_penalty: float = 0.0
  window: tuple = (0, 0)
  n_ids: int = 0
  key_scale: bool = False
  rounds_folded: bool = False
  d_head: int = 0


def supported(block_size, d_head, dtype):
  """Whether the layers run the GPU kernels for these: block in (16, 32, 64, 128), 16 <=
  d_head <= 128, float.

  Heads between kernel widths are zero-padded to the next one (see the module); heads
  narrower than 16 stay on XLA (the kernel of 16 would do at least twice their work; not
  measured), though `sparse_attention` itself takes them.
  """
  return (block_size in _BLOCKS and _HEAD_DIMS[0] <= d_head <= _HEAD_DIMS[-1]
          and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16, jnp.float32))


def sparse_attention(q, k, v, q_pos, k_pos, plan, causal=False, interpret=False,
                     return_lse=False, self_penalty=0.0, chunk_ids=(), window=(0, 0),
                     key_scale=None, sequence_major=False, rounds_folded=False, rows=None,
                     head_fold=1):
  """softmax(q k^T / sqrt(d)) v over the plan's blocks, masked by positions.

  Args:
    q, k, v: (B, H, L, d) with L = plan.n_blocks * block_size and d <= 128 (widths other
      than 16, 32, 64, 128 run zero-padded to the next); k is None when `key_scale` is given.
    q_pos, k_pos: (B | 1, H | 1, L) int32 positions; k_pos = -1 marks keys no query sees.
    plan: a `BlockPlan` (static).
    causal: a query sees only keys with k_pos <= q_pos.
    interpret: run through the Pallas interpreter (CPU).
    return_lse: also return the (B, H, L) float32 log-sum-exp of each query's visible
      logits (large_negative(float32) for a query that sees no key).
    self_penalty: subtracted from logits whose key position equals the query's.
    chunk_ids: per hash round a (B | 1, H | 1, L) int32 vector, each position's chunk in
      that round; with `window=(before, after)`, logits get -log(#rounds where the key's
      chunk - the query's chunk lies in [-before, after]) (at least 1 counted).
    rounds_folded: the heads fold (head, round) pairs, round fastest (H = heads * len(
      chunk_ids)), and each head's plan only computes pairs within its own round's window
      (LSH: a round's sorted chunks attend to their neighbours), so that round counts 1
      without a comparison. Values are those of the full count whenever that holds.
    key_scale: instead of k, a (B, H, L) float32 array: the keys are the queries' rows
      times it (shared QK; LSH passes `lsh.hashing.shared_qk_scale(q)`). Result and
      gradients (to q and key_scale) are those of `k=q * key_scale[..., None]`, with the
      scores taken in float32 instead of rounding the keys to q's dtype.
    sequence_major: run the kernels on (B, L, H, d) transposes of q, k, v (the output and
      the gradients likewise). Same results; when q, k, v are themselves transposes of
      (B, L, H, d) arrays (an `Attention` layer's projections), XLA cancels the two, so no
      head-major copy of q, k, v, the output or their gradients is made (block-sparse
      attention). Off for LSH: its kernels, reading rows through the sort order, ran 7-14 %
      slower sequence-major on an H100 (RESULTS section 52).
    rows: None, or a (B | 1, H | 1, L) int32 permutation of [0, L) per pair: the kernels
      attend over the permuted sequence, slot i being row rows[i] of q, k, v and key_scale,
      and write slot i's output and log-sum-exp to row rows[i]. The result is the permuted
      problem's, permuted back, in the arrays' own order, and no permuted copy of anything
      is made (LSH: rows are the sorted order). q_pos, k_pos and chunk_ids stay in slot
      order. Needs a plan that splits no work row (LSH's banded plan).
    head_fold: with rows, q, k, v and key_scale have H / head_fold heads and head h of the
      problem reads their head h // head_fold (LSH: a head's hash rounds share its q and
      v); the output and lse have H heads, the gradients the inputs' own.
  Returns:
    (B, H, L, d) in q's dtype; a query that sees no key outputs 0. With return_lse,
    (output, lse).

    >>> out, lse = sparse_attention(q, None, v, pos, k_pos, plan, key_scale=scale,
    ...                             rows=order, head_fold=2, return_lse=True)  # LSH
  """
  shape = lambda a: None if a is None else a.shape
  if (k is None) == (key_scale is None):
    raise ValueError('sparse_attention: give exactly one of k (an array) and key_scale '
                     f'(shared QK: keys = q * key_scale); got k of shape {shape(k)} and '
                     f'key_scale of shape {shape(key_scale)}.')
  if key_scale is not None and key_scale.shape != q.shape[:3]:
    raise ValueError(f'sparse_attention: key_scale must be (B, H, L) = {q.shape[:3]} for q '
                     f'of shape {q.shape}; got {key_scale.shape}.')
  k_shape = q.shape if k is None else k.shape
  n, length = plan.n_blocks, q.shape[-2]
  if length % n or q.shape != k_shape or k_shape != v.shape:
    raise ValueError(f'sparse_attention: q/k/v must share a shape (B, H, L, d) with L a '
                     f'multiple of the plan\'s {n} blocks; got {q.shape}, {shape(k)}, '
                     f'{v.shape}.')
  d_head = q.shape[-1]
  width = pow2_at_least(d_head, _HEAD_DIMS[0])   # The next kernel width.
  if width > _HEAD_DIMS[-1]:
    raise ValueError(f'sparse_attention: the kernels take heads up to {_HEAD_DIMS[-1]} wide; '
                     f'got q of shape {q.shape} (d_head={d_head}).')
  chunk_ids = tuple(chunk_ids)
  head_fold = int(head_fold)
  if head_fold < 1 or (head_fold > 1 and rows is None):
    raise ValueError(f'sparse_attention: head_fold must be >= 1, and 1 without rows; got '
                     f'{head_fold} with rows {shape(rows)}.')
  heads = q.shape[1] * head_fold
  named = [('q_pos', q_pos), ('k_pos', k_pos)] + [(f'chunk_ids[{r}]', c)
                                                  for r, c in enumerate(chunk_ids)]
  named += [] if rows is None else [('rows', rows)]
  for name, pos in named:
    if pos.ndim != 3 or pos.shape[-1] != length or pos.shape[0] not in (1, q.shape[0]) or (
        pos.shape[1] not in (1, heads)):
      raise ValueError(f'sparse_attention: {name} must be (B | 1, H | 1, {length}) with H = '
                       f'{heads}, got {pos.shape}.')
  if rows is not None and (len(plan.fwd.extra) or len(plan.bwd.extra)):
    raise ValueError('sparse_attention: rows need a plan that splits no work row (its '
                     'results are written to permuted rows, which a split could not '
                     f'combine); this plan has {len(plan.fwd.extra)} extra forward and '
                     f'{len(plan.bwd.extra)} extra backward work rows.')
  if rounds_folded and (len(chunk_ids) < 2 or heads % len(chunk_ids)):
    raise ValueError(f'sparse_attention: rounds_folded needs >= 2 chunk_ids vectors and heads '
                     f'a multiple of their number; got {len(chunk_ids)} and q of shape '
                     f'{q.shape} ({heads} heads with head_fold {head_fold}).')
  terms = LogitTerms(bool(causal), float(self_penalty), tuple(int(w) for w in window),
                     len(chunk_ids), key_scale is not None, bool(rounds_folded),
                     0 if width == d_head else d_head)
  ids = tuple(c.astype(jnp.int32) for c in chunk_ids)
  if key_scale is not None:
    key_scale = key_scale.astype(jnp.float32)
  if width != d_head:   # zeros add nothing to q.k or to the output's first d_head columns
    widen = lambda t: jnp.pad(t, [(0, 0)] * 3 + [(0, width - d_head)])
    q, k, v = widen(q), None if k is None else widen(k), widen(v)
  swap = _swap if sequence_major else (lambda t: t)
  rows = None if rows is None else rows.astype(jnp.int32)
  out, lse = _attention(swap(q), None if k is None else swap(k), swap(v),
                        q_pos.astype(jnp.int32), k_pos.astype(jnp.int32), ids, key_scale,
                        rows, plan, terms, interpret, bool(sequence_major), head_fold)
  out = swap(out)[..., :d_head]
  return (out, lse) if return_lse else out


def _swap(t):
  """(B, H, L, d) <-> (B, L, H, d)."""
  return t.transpose(0, 2, 1, 3)


def _heads_first(a, seq):
  """A kernel output (main or parts) with heads before the sequence: (B, L, H, d) arrays of
  the sequence-major layout swapped, (B, H, L) ones as they are."""
  return _swap(a) if seq and a.ndim == 4 else a


# k is None exactly when key_scale is given (terms.key_scale): the kernels then read q as
# the (unscaled) keys and scale each score column. With seq (sequence-major), q, k, v, the
# output and their gradients are (B, L, H, d) in here; lse, delta, positions, chunk ids and
# key_scale are (B | 1, H | 1, L) either way. With rows (gathered rows: see
# sparse_attention), q, k, v and key_scale have H / fold heads; out, lse, d_out and delta
# are in the arrays' own row order, positions and chunk ids in slot order.
@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10, 11, 12))
def _attention(q, k, v, q_pos, k_pos, ids, key_scale, rows, plan, terms, interpret, seq,
               fold):
  return _attention_fwd(q, k, v, q_pos, k_pos, ids, key_scale, rows, plan, terms, interpret,
                        seq, fold)[0]


def _attention_fwd(q, k, v, q_pos, k_pos, ids, key_scale, rows, plan, terms, interpret, seq,
                   fold):
  out, lse = _forward(q, q if k is None else k, v, q_pos, k_pos, ids, key_scale, rows, plan,
                      terms, interpret, seq, fold)
  return (out, lse), (q, k, v, q_pos, k_pos, ids, key_scale, rows, out, lse)


def _attention_bwd(plan, terms, interpret, seq, fold, residuals, cotangents):
  q, k, v, q_pos, k_pos, ids, key_scale, rows, out, lse = residuals
  d_out, d_lse = cotangents
  # d logit = p * (dp - delta) with delta = <d_out, out> - d_lse (d lse / d logit = p).
  delta = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)
  delta = (delta.transpose(0, 2, 1) if seq else delta) - d_lse
  d_out = d_out.astype(q.dtype)
  # Base-2 log-sum-exp; a row that sees no key gets -_NEG, so exp2(s - lse) is 0 for all.
  lse = jnp.where(lse > 0.5 * _NEG, lse * _LOG2E, -_NEG)
  bs = _length(q, seq) // plan.n_blocks
  arrays = [q, q if k is None else k, v, q_pos, k_pos, d_out, lse, delta, *ids,
            *_optional_arrays(key_scale, rows)]
  # dq per forward work row and dk/dv per backward one: no atomics (a single kernel adding
  # dq atomically measured 1.3-1.7x slower on an H200, contended by the global blocks).
  # Unsplit blocks' gradients are written once in q's dtype; split blocks' parts in float32,
  # summed here (only those blocks are touched).
  (dq,) = _call(_dq_kernel, plan.fwd, bs, q, terms, interpret, seq, 1, [q.dtype], arrays,
                fold, rows is not None)
  # With key_scale the dk/dv kernel splits the scaled keys' gradient itself: q's share
  # (dk * key_scale) in place of dk, and the scale's (dk . q) as a third output.
  grads = _call(_dkv_kernel, plan.bwd, bs, q, terms, interpret, seq, 2,
                [q.dtype] * 2 + [jnp.float32] * (key_scale is not None), arrays, fold,
                rows is not None)
  dq = _sum_parts(*dq, plan.fwd, bs, seq)
  dk, dv = (_sum_parts(*g, plan.bwd, bs, seq) for g in grads[:2])
  d_scale = None if key_scale is None else _sum_parts(*grads[2], plan.bwd, bs, False)
  if fold > 1:   # the problem's heads -> the inputs' (a head's rounds add up)
    dq, dk, dv = (_fold_sum(g, fold, seq) for g in (dq, dk, dv))
    d_scale = None if d_scale is None else _fold_sum(d_scale, fold, False)
  if key_scale is not None:   # d_scale is (B, H, L) either way
    dq = dq.astype(jnp.float32) + dk.astype(jnp.float32)
    dk = None
  return (dq.astype(q.dtype), None if dk is None else dk.astype(k.dtype), dv.astype(v.dtype),
          None, None, (None,) * len(ids), d_scale, None)


_attention.defvjp(_attention_fwd, _attention_bwd)


def _optional_arrays(key_scale, rows):
  """The kernels' optional inputs after the chunk ids, those given: key_scale, then the
  gathered rows' index (`_split_refs` reads them in this order)."""
  return tuple(a for a in (key_scale, rows) if a is not None)


def _fold_sum(g, fold, seq):
  """A gradient per problem head, (B, H, L, d) ((B, L, H, d) if seq), summed over each
  `fold` consecutive heads (in float32): the inputs' H / fold heads."""
  axis = 2 if seq else 1
  shape = g.shape[:axis] + (g.shape[axis] // fold, fold) + g.shape[axis + 1:]
  return jnp.sum(g.astype(jnp.float32).reshape(shape), axis=axis + 1)


def _length(q, seq):
  return q.shape[1] if seq else q.shape[2]


def _forward(q, k, v, q_pos, k_pos, ids, key_scale, rows, plan, terms, interpret, seq, fold):
  """(out (B, H, L, d) ((B, L, H, d) if seq), lse (B, H, L) float32)."""
  bs = _length(q, seq) // plan.n_blocks
  (out, out_parts), (lse, lse_parts) = _call(
      _fwd_kernel, plan.fwd, bs, q, terms, interpret, seq, 1, [q.dtype, jnp.float32],
      [q, k, v, q_pos, k_pos, *ids, *_optional_arrays(key_scale, rows)], fold,
      rows is not None)
  if out_parts is None:
    return out, lse
  # Combine the float32 parts of split blocks by log-sum-exp; only those blocks are touched.
  split, group = _parts_layout(plan.fwd)[1:]
  o_p, lse_p = (_per_block(_heads_first(a, seq), bs) for a in (out_parts, lse_parts))
  top = jnp.full(lse_p.shape[:2] + (len(split), bs), _NEG, jnp.float32).at[
      :, :, group].max(lse_p)
  w = jnp.exp(lse_p - top[:, :, group])
  den = jnp.zeros_like(top).at[:, :, group].add(w)
  num = jnp.zeros(o_p.shape[:2] + top.shape[2:] + o_p.shape[-1:], jnp.float32).at[
      :, :, group].add(o_p * w[..., None])
  out = _set_blocks(out, split, num / den[..., None], bs, seq)
  return out, _set_blocks(lse, split, top + jnp.log(den), bs)


def _per_block(a, bs):
  """(B, H, N * bs, ...) -> (B, H, N, bs, ...)."""
  return a.reshape(a.shape[:2] + (-1, bs) + a.shape[3:])


def _set_blocks(a, blocks, values, bs, seq=False):
  """a (B, H, L, ...) ((B, L, H, d) if seq) with its blocks `blocks` set to values (B, H,
  len(blocks), bs, ...)."""
  values = values.astype(a.dtype)
  if seq:
    per = a.reshape((a.shape[0], -1, bs) + a.shape[2:])                    # (B, N, bs, H, d)
    return per.at[:, blocks].set(values.transpose(0, 2, 3, 1, 4)).reshape(a.shape)
  return _per_block(a, bs).at[:, :, blocks].set(values).reshape(a.shape)


def _sum_parts(main, parts, rows, bs, seq):
  """Per-block sums: main (B, H, L, d) ((B, L, H, d) if seq) with its split blocks' float32
  parts (the same layout) added up."""
  if parts is None:
    return main
  split, group = _parts_layout(rows)[1:]
  p = _per_block(_heads_first(parts, seq), bs)
  total = jnp.zeros(p.shape[:2] + (len(split),) + p.shape[3:], jnp.float32).at[
      :, :, group].add(p)
  return _set_blocks(main, split, total, bs, seq)


def _parts_layout(rows):
  """Where split blocks' work rows write (static numpy).

  slots: (R,) int32, -1 for a row written straight to its block, else its index among the
  parts: split blocks' first rows (in block order), then the extra rows. split: (S,) the
  split blocks. group: (P,) each part's index in split.
  """
  split = np.unique(rows.extra_owner)
  slots = np.full(len(rows.owner), -1, np.int32)
  slots[split] = np.arange(len(split))
  slots[rows.extra] = len(split) + np.arange(len(rows.extra))
  group = np.concatenate([np.arange(len(split)), np.searchsorted(split, rows.extra_owner)])
  return slots, split, group.astype(np.int32)


def _call(kernel, rows, bs, q, terms, interpret, seq, n_full, out_dtypes, arrays, fold=1,
          gather=False):
  """Runs `kernel` with one program per (work row, batch, head).

  Tables and the arrays go in whole per (batch, head) pair (the kernel slices its blocks):
  (B, H, L, d) ((B, L, H, d) if seq) and (B | 1, H | 1, L) arrays alike give the kernel an
  (L, ...) ref; an array of H / n heads gives head h its head h // n (fold: q's heads are
  H / fold). Each output j comes back as (main, parts): main (B, H, L, d) ((B, L, H, d) if
  seq) for j < n_full, else (B, H, L), in out_dtypes[j], each unsplit block written by its
  one work row (whole per pair with gather: the kernel writes its permuted rows); parts
  float32 in main's layout with L -> P * bs, the rows of the P work rows of split blocks
  (`_parts_layout`), or None when no block is split.
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  batch, length, heads, d = q.shape if seq else (q.shape[0], q.shape[2], q.shape[1],
                                                 q.shape[3])
  heads *= fold
  n_rows, last = len(rows.owner), length // bs - 1
  slots = _parts_layout(rows)[0]
  n_parts = int((slots >= 0).sum())
  whole = lambda a: pl.BlockSpec(a.shape, lambda i, b, h: (0,) * a.ndim)
  pick = lambda size, idx: idx if size > 1 else 0
  head = lambda n, h: h // (heads // n) if n > 1 else 0   # n: the array's heads
  # With seq, the 4-D arrays (q, k, v, d_out, 4-D outputs and their parts) are (B, L, H, d).
  is_seq = lambda a: seq and a.ndim == 4

  def per_pair(a):
    if is_seq(a):
      return pl.BlockSpec((None, a.shape[1], None, d),
                          lambda i, b, h: (b, 0, head(a.shape[2], h), 0))
    return pl.BlockSpec((None, None) + a.shape[2:], lambda i, b, h: (
        pick(a.shape[0], b), head(a.shape[1], h)) + (0,) * (a.ndim - 2))

  def shape(j, n):
    if j >= n_full:
      return (batch, heads, n)
    return (batch, n, heads, d) if seq else (batch, heads, n, d)

  tables = [_padded(rows.owner), _padded(rows.table), _padded(rows.counts), _padded(slots)]
  in_specs = [whole(t) for t in tables] + [per_pair(a) for a in arrays]
  # Work row i < n_blocks is block i's first part: its block of main (rows past the blocks
  # point at the last block and write nothing there).
  block_of = lambda i: jnp.minimum(i, last)
  out_shapes = [jax.ShapeDtypeStruct(shape(j, length), dtype)
                for j, dtype in enumerate(out_dtypes)]
  out_specs = [per_pair(s) if gather else
               pl.BlockSpec((None, bs, None, d), lambda i, b, h: (b, block_of(i), h, 0))
               if is_seq(s) else
               pl.BlockSpec((None, None, bs) + s.shape[3:],
                            lambda i, b, h, s=s: (b, h, block_of(i)) + (0,) * (s.ndim - 3))
               for s in out_shapes]
  if n_parts:
    parts = [jax.ShapeDtypeStruct(shape(j, n_parts * bs), jnp.float32)
             for j in range(len(out_dtypes))]
    out_shapes += parts
    out_specs += [per_pair(s) for s in parts]
  params = triton_params(*COMPILER_PARAMS[kernel.__name__.strip('_')], interpret)
  body = functools.partial(kernel, bs=bs, width=len(rows.table) // n_rows,
                           scale=(terms.d_head or d) ** -0.5, terms=terms, gather=gather)
  outs = pl.pallas_call(
      body, grid=(n_rows, batch, heads), in_specs=in_specs, out_specs=out_specs,
      out_shape=out_shapes, compiler_params=params, interpret=interpret,
      name=f'plait_sparse_{kernel.__name__.strip("_")}')(*tables, *arrays)
  n = len(out_dtypes)
  return [(outs[j], outs[n + j] if n_parts else None) for j in range(n)]


def _store(slots_ref, row, out_refs, values, bs, idx=None):
  """Writes a work row's results: to its block of each main output (to its rows idx of
  them, with gathered rows), or, for a row of a split block, to its slot of each float32
  parts output (`_call`)."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  n = len(values)
  mains, parts = out_refs[:n], out_refs[n:]

  def to_main():
    for ref, value in zip(mains, values):
      ref[... if idx is None else _at(ref, idx)] = value.astype(ref.dtype)

  if not parts:
    to_main()
    return
  slot = slots_ref[row]
  pl.when(slot < 0)(to_main)

  @pl.when(slot >= 0)
  def _():
    at = pl.ds(pl.multiple_of(slot * bs, bs), bs)
    for ref, value in zip(parts, values):
      ref[_at(ref, at)] = value


def _padded(table):
  """A table as an int32 array padded to a power-of-two length (Triton's block shapes)."""
  size = 1 << max(len(table) - 1, 0).bit_length()
  return jnp.asarray(np.pad(table, (0, size - len(table))), jnp.int32)


def _block(ref, block, bs):
  """Rows [block * bs, (block + 1) * bs) of a (L, ...) ref."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  return ref[_at(ref, pl.ds(pl.multiple_of(block * bs, bs), bs))]


def _at(ref, rows):
  """The index of rows (a pl.ds or an index vector) of a (L,) or (L, d) ref, all columns."""
  return rows if len(ref.shape) == 1 else (rows, slice(None))


def _index(rows_ref, block, bs):
  """With gathered rows, the (bs,) rows of the arrays that slots block are; else None."""
  return None if rows_ref is None else _block(rows_ref, block, bs)


def _rows(ref, idx, block, bs):
  """A block of a row array (q, k, v, d_out, lse, delta, key_scale): its rows idx with
  gathered rows (`_index`), else its slots' block."""
  return _block(ref, block, bs) if idx is None else ref[_at(ref, idx)]


def _scores(q, k, q_pos, k_pos, q_ids, k_ids, k_scale, terms, scale, keys_first=False):
  """(bs_q, bs_k) float32 logits in base 2 (times log2(e)), invisible ones _NEG; with
  keys_first their transpose (bs_k, bs_q), made as k q^T (the dk/dv kernel's orientation:
  its dots then take no transposed tile).

  Visible: key position >= 0 and, if causal, not after the query's. Each key's logits are
  scaled by k_scale ((bs_k,) or None); the LogitTerms' self penalty and duplicate count are
  subtracted where they apply.
  """
  # A query's vectors run along the tile's rows (keys_first: its columns), a key's across.
  by_query, by_key = ((lambda x: x[None, :]), (lambda x: x[:, None])) if keys_first else (
      (lambda x: x[:, None]), (lambda x: x[None, :]))
  # Constants fold into the key scales (one vector op instead of one per logit).
  col = scale * _LOG2E
  if k_scale is not None:
    col = by_key(k_scale * col)
  s = (block_dot(k, q, trans_b=True) if keys_first else block_dot(q, k, trans_b=True)) * col
  if terms.self_penalty:
    s = s - jnp.where(by_key(k_pos) == by_query(q_pos), terms.self_penalty * _LOG2E, 0.0)
  if terms.n_ids:
    # q_ids / k_ids hold the rounds to compare (`_ids`: all, or the other rounds).
    before, after = terms.window
    seen = [by_key(kc + before) - by_query(qc) for qc, kc in zip(q_ids, k_ids)]
    # diff in [-before, after] <=> diff + before in [0, before + after]: one unsigned compare.
    seen = [d.astype(jnp.uint32) <= before + after for d in seen]
    if terms.rounds_folded and len(seen) == 1:   # count 1 or 2: subtract log2(2) = 1
      s = s - seen[0].astype(jnp.float32)
    else:
      count = int(terms.rounds_folded) + sum(c.astype(jnp.int32) for c in seen)
      # log2 of the small integer count, exact, without a transcendental per logit.
      for n in range(2, terms.n_ids + 1):
        s = s - jnp.where(count == n, float(np.log2(n)), 0.0)
  if terms.causal:
    # Padding keys (-1) move past every query, so one comparison per logit masks both.
    k_last = jnp.where(k_pos >= 0, k_pos, jnp.iinfo(jnp.int32).max)
    ok = by_key(k_last) <= by_query(q_pos)
  else:
    ok = by_key(k_pos >= 0)
  return jnp.where(ok, s, _NEG)


def _own_round(terms):
  """With rounds_folded, this program's round (head h runs round h % n_ids), else None.
  Read at the kernel's top level (the interpreter has no program_id inside loops)."""
  if not terms.rounds_folded:
    return None
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  return pl.program_id(2) % terms.n_ids


def _ids(refs, block, bs, own):
  """The chunk ids of a block to compare: every round's, or the rounds other than `own`
  (`_own_round`; picked by arithmetic, not a branch)."""
  ids = [_block(r, block, bs) for r in refs]
  if own is None:
    return ids
  n = len(ids)
  return [sum(ids[c] * ((own + j) % n == c).astype(jnp.int32) for c in range(n))
          for j in range(1, n)]


def _split_refs(refs, terms, gather):
  """A kernel's trailing refs -> (chunk-id refs, key-scale ref or None, gathered rows' ref
  or None, output refs)."""
  n = terms.n_ids + terms.key_scale
  return (refs[:terms.n_ids], refs[terms.n_ids] if terms.key_scale else None,
          refs[n] if gather else None, refs[n + gather:])


def _key_scale(ref, idx, block, bs):
  return None if ref is None else _rows(ref, idx, block, bs)


def _fwd_kernel(owner_ref, table_ref, counts_ref, slots_ref, q_ref, k_ref, v_ref, qpos_ref,
                kpos_ref, *refs, bs, width, scale, terms, gather):
  """One work row: online softmax over its key blocks; partial output and log-sum-exp."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  ids_refs, scale_ref, rows_ref, out_refs = _split_refs(refs, terms, gather)
  row, own = pl.program_id(0), _own_round(terms)
  qb = owner_ref[row]
  q_idx = _index(rows_ref, qb, bs)
  q = _rows(q_ref, q_idx, qb, bs)
  q_pos, q_ids = _block(qpos_ref, qb, bs), _ids(ids_refs, qb, bs, own)

  def step(j, carry):
    acc, top, total = carry
    kb = table_ref[row * width + j]
    k_idx = _index(rows_ref, kb, bs)
    k, v = _rows(k_ref, k_idx, kb, bs), _rows(v_ref, k_idx, kb, bs)
    s = _scores(q, k, q_pos, _block(kpos_ref, kb, bs), q_ids, _ids(ids_refs, kb, bs, own),
                _key_scale(scale_ref, k_idx, kb, bs), terms, scale)
    new_top = jnp.maximum(top, jnp.max(s, axis=1))
    # While a row has seen no key, top is _NEG and masked entries get p = 1: garbage that
    # the first visible key fades to 0 (exp2(_NEG - real) = 0), or that `seen` drops.
    p = jnp.exp2(s - new_top[:, None])
    fade = jnp.exp2(top - new_top)
    acc = acc * fade[:, None] + block_dot(p.astype(v.dtype), v)
    return acc, new_top, total * fade + jnp.sum(p, axis=1)

  init = (jnp.zeros((bs, q.shape[-1]), jnp.float32), jnp.full((bs,), _NEG, jnp.float32),
          jnp.zeros((bs,), jnp.float32))
  acc, top, total = jax.lax.fori_loop(0, counts_ref[row], step, init)
  seen = top > 0.5 * _NEG
  safe = jnp.where(seen, total, 1.0)
  _store(slots_ref, row, out_refs, [jnp.where(seen[:, None], acc / safe[:, None], 0.0),
                                    jnp.where(seen, top / _LOG2E + jnp.log(safe), _NEG)], bs,
         q_idx)


def _probs_and_dscores(q, k, v, q_pos, k_pos, q_ids, k_ids, k_scale, d_out, lse, delta,
                       terms, scale, keys_first=False):
  """Recomputed probabilities p and score gradients ds (both (bs_q, bs_k) float32; with
  keys_first their transposes (bs_k, bs_q), see `_scores`).

  lse is base 2 (-_NEG for rows that see nothing), so masked entries get exp2(-huge) = 0.
  """
  s = _scores(q, k, q_pos, k_pos, q_ids, k_ids, k_scale, terms, scale, keys_first)
  if keys_first:
    p = jnp.exp2(s - lse[None, :])
    return p, p * (block_dot(v, d_out, trans_b=True) - delta[None, :])
  p = jnp.exp2(s - lse[:, None])
  return p, p * (block_dot(d_out, v, trans_b=True) - delta[:, None])


def _dq_kernel(owner_ref, table_ref, counts_ref, slots_ref, q_ref, k_ref, v_ref, qpos_ref,
               kpos_ref, dout_ref, lse_ref, delta_ref, *refs, bs, width, scale, terms, gather):
  """One forward work row: dq over its key blocks."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  ids_refs, scale_ref, rows_ref, out_refs = _split_refs(refs, terms, gather)
  row, own = pl.program_id(0), _own_round(terms)
  qb = owner_ref[row]
  q_idx = _index(rows_ref, qb, bs)
  q, d_out = _rows(q_ref, q_idx, qb, bs), _rows(dout_ref, q_idx, qb, bs)
  lse, delta = _rows(lse_ref, q_idx, qb, bs), _rows(delta_ref, q_idx, qb, bs)
  q_pos, q_ids = _block(qpos_ref, qb, bs), _ids(ids_refs, qb, bs, own)

  def step(j, dq):
    kb = table_ref[row * width + j]
    k_idx = _index(rows_ref, kb, bs)
    k, v, k_pos = _rows(k_ref, k_idx, kb, bs), _rows(v_ref, k_idx, kb, bs), _block(kpos_ref, kb, bs)
    k_scale = _key_scale(scale_ref, k_idx, kb, bs)
    _, ds = _probs_and_dscores(q, k, v, q_pos, k_pos, q_ids, _ids(ids_refs, kb, bs, own),
                               k_scale, d_out, lse, delta, terms, scale)
    if k_scale is not None:
      ds = ds * k_scale[None, :]   # d score / d q = the scaled key
    return dq + block_dot(ds.astype(k.dtype), k)

  dq = jax.lax.fori_loop(0, counts_ref[row], step, jnp.zeros((bs, q.shape[-1]), jnp.float32))
  _store(slots_ref, row, out_refs, [dq * scale], bs, q_idx)


def _dkv_kernel(owner_ref, table_ref, counts_ref, slots_ref, q_ref, k_ref, v_ref, qpos_ref,
                kpos_ref, dout_ref, lse_ref, delta_ref, *refs, bs, width, scale,
                terms, gather):
  """One backward work row (a key block and query blocks that see it): dk and dv (with
  key_scale: dk * key_scale, dv and the scale's gradient dk . q)."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  ids_refs, scale_ref, rows_ref, out_refs = _split_refs(refs, terms, gather)
  row, own = pl.program_id(0), _own_round(terms)
  kb = owner_ref[row]
  k_idx = _index(rows_ref, kb, bs)
  k, v, k_pos = _rows(k_ref, k_idx, kb, bs), _rows(v_ref, k_idx, kb, bs), _block(kpos_ref, kb, bs)
  k_ids, k_scale = _ids(ids_refs, kb, bs, own), _key_scale(scale_ref, k_idx, kb, bs)

  def step(j, carry):
    dk, dv = carry
    qb = table_ref[row * width + j]
    q_idx = _index(rows_ref, qb, bs)
    q, d_out = _rows(q_ref, q_idx, qb, bs), _rows(dout_ref, q_idx, qb, bs)
    q_pos = _block(qpos_ref, qb, bs)
    lse, delta = _rows(lse_ref, q_idx, qb, bs), _rows(delta_ref, q_idx, qb, bs)
    # Transposed tiles (keys along rows): p^T d_out and ds^T q need no transpose.
    p_t, ds_t = _probs_and_dscores(q, k, v, q_pos, k_pos, _ids(ids_refs, qb, bs, own), k_ids,
                                   k_scale, d_out, lse, delta, terms, scale, keys_first=True)
    dv = dv + block_dot(p_t.astype(d_out.dtype), d_out)
    dk = dk + block_dot(ds_t.astype(q.dtype), q)
    return dk, dv

  zeros = jnp.zeros((bs, k.shape[-1]), jnp.float32)
  dk, dv = jax.lax.fori_loop(0, counts_ref[row], step, (zeros, zeros))
  dk = dk * scale
  if k_scale is None:
    _store(slots_ref, row, out_refs, [dk, dv], bs, k_idx)
  else:   # keys q * key_scale (k holds q's rows): dk's shares of q and of the scale
    _store(slots_ref, row, out_refs, [dk * k_scale[:, None], dv,
                                      jnp.sum(dk * k.astype(jnp.float32), axis=1)], bs, k_idx)
