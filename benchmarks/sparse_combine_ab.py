"""A/B of the block-sparse kernel's split blocks: how the pattern is cut into work rows, how the
split blocks' float32 parts are combined, and the Triton stages, each variant vs the first.

  python benchmarks/sparse_combine_ab.py                          # GPU: agreement, then times
  python benchmarks/sparse_combine_ab.py --interpret --check_length 1024 --budget_s 0  # CPU
  python benchmarks/sparse_combine_ab.py --variants landed landed+bwd8 grouped+bwd16+stages3

A variant (`parse_variant`) names the combine, then optional parts:
- `landed` (`sparse_kernel._forward` / `_sum_parts`): one scatter-add (forward: scatter-max
  and scatter-adds of the log-sum-exp weights) of all parts into their blocks, then one
  scatter setting the split blocks. `grouped` (this file only): the split blocks grouped by
  their number of work rows, each block's parts consecutive, so each group combines by a
  reshape and a reduction (no contended adds), all split blocks set by one scatter of unique
  indices.
- `+fwdN` / `+bwdN`: the work-row widths of the plan's forward / backward lists (default:
  `block_sparse.kernel_plan`'s, the pattern's `window_width` forward and twice it backward;
  RESULTS section 37 measured the backward width). `+stagesN`: Triton stages of the kernels.

All variants run the same kernels. The agreement check compares each variant's values and
q/k/v gradients with the first's (float32, relative L2); timings are fwd+bwd of the bare
kernel (`attention_gpu.py`'s block_sparse-core) and of the layer (block_sparse_pallas), each
variant in this process, so on the same GPU.
"""
import argparse
import contextlib
import functools
import json
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from attention_gpu import MAKERS, block_sparse_core_step, layer_step, measure  # pylint: disable=g-bad-import-order
from block_sparse_kernel_gpu import rel  # pylint: disable=g-bad-import-order
from plait.layers.attention import block_sparse, sparse_kernel as sk
from plait.layers.attention.block_plan import block_plan

OWN_PLAN = block_sparse.kernel_plan  # the package's, whatever a variant patches in


class GroupedLayout(NamedTuple):
  """slots (R,): -1 or a work row's part index (read by `sk._call` as item 0); groups:
  ((blocks, k), ...) split blocks with k rows each, each block's parts consecutive; blocks:
  all split blocks in part order."""
  slots: np.ndarray
  groups: tuple
  blocks: np.ndarray


def grouped_layout(rows):
  split, n_extra = np.unique(rows.extra_owner, return_counts=True)
  rows_of = {int(b): [int(b)] for b in split}            # work row b is block b's first
  for row, owner in zip(rows.extra, rows.extra_owner):
    rows_of[int(owner)].append(int(row))
  slots = np.full(len(rows.owner), -1, np.int32)
  groups, nxt = [], 0
  for k in np.unique(n_extra + 1):
    blocks = split[n_extra + 1 == k]
    groups.append((blocks, int(k)))
    for b in blocks:
      slots[rows_of[int(b)]] = np.arange(nxt, nxt + k)
      nxt += k
  ordered = np.concatenate([b for b, _ in groups]) if groups else np.zeros(0, np.int32)
  return GroupedLayout(slots, tuple(groups), ordered.astype(np.int32))


def per_group(parts, layout, bs):
  """(B, H, P * bs, ...) parts -> per group (B, H, S_k, k, bs, ...)."""
  start = 0
  for blocks, k in layout.groups:
    size = len(blocks) * k * bs
    g = parts[:, :, start:start + size]
    yield g.reshape(g.shape[:2] + (len(blocks), k, bs) + g.shape[3:])
    start += size


def set_blocks(a, blocks, values, bs, seq=False):
  """a (B, H, L, ...) ((B, L, H, d) if seq) with blocks `blocks` set to values (B, H,
  len(blocks), bs, ...): one scatter of unique indices."""
  values = values.astype(a.dtype)
  if seq:
    per = a.reshape((a.shape[0], -1, bs) + a.shape[2:])                    # (B, N, bs, H, d)
    per = per.at[:, blocks].set(values.transpose(0, 2, 3, 1, 4), unique_indices=True)
  else:
    per = a.reshape(a.shape[:2] + (-1, bs) + a.shape[3:])
    per = per.at[:, :, blocks].set(values, unique_indices=True)
  return per.reshape(a.shape)


def grouped_forward(q, k, v, q_pos, k_pos, ids, key_scale, rows, plan, terms, interpret, seq,
                    fold):
  bs = sk._length(q, seq) // plan.n_blocks  # pylint: disable=protected-access
  (out, out_parts), (lse, lse_parts) = sk._call(  # pylint: disable=protected-access
      sk._fwd_kernel, plan.fwd, bs, q, terms, interpret, seq, 1, [q.dtype, jnp.float32],  # pylint: disable=protected-access
      [q, k, v, q_pos, k_pos, *ids, *sk._optional_arrays(key_scale, rows)],  # pylint: disable=protected-access
      fold, rows is not None)
  if out_parts is None:
    return out, lse
  layout = grouped_layout(plan.fwd)
  outs, lses = [], []
  for o_g, l_g in zip(per_group(sk._heads_first(out_parts, seq), layout, bs),  # pylint: disable=protected-access
                      per_group(lse_parts, layout, bs)):
    top = jnp.max(l_g, axis=3)
    w = jnp.exp(l_g - top[:, :, :, None])
    den = jnp.sum(w, axis=3)
    outs.append(jnp.sum(o_g * w[..., None], axis=3) / den[..., None])
    lses.append(top + jnp.log(den))
  return (set_blocks(out, layout.blocks, jnp.concatenate(outs, axis=2), bs, seq),
          set_blocks(lse, layout.blocks, jnp.concatenate(lses, axis=2), bs))


def grouped_sum_parts(main, parts, rows, bs, seq):
  if parts is None:
    return main
  layout = grouped_layout(rows)
  total = jnp.concatenate([jnp.sum(p, axis=3)
                           for p in per_group(sk._heads_first(parts, seq), layout, bs)], axis=2)  # pylint: disable=protected-access
  return set_blocks(main, layout.blocks, total, bs, seq)


VARIANTS = ('landed', 'grouped', 'landed+bwd8', 'landed+bwd16', 'landed+fwd16')


def parse_variant(spec):
  """'landed' | 'grouped', then optional '+fwdN' / '+bwdN' (work-row widths of the plan's
  forward / backward lists; default: `block_sparse.kernel_plan`'s) and '+stagesN' (Triton
  stages of the three kernels, 4 warps). -> (combine, fwd_width, bwd_width, stages)."""
  combine, *opts = spec.split('+')
  if combine not in ('landed', 'grouped'):
    raise ValueError(f'variant {spec!r}: starts with landed or grouped')
  found = {'fwd': None, 'bwd': None, 'stages': None}
  for opt in opts:
    key = opt.rstrip('0123456789')
    if key not in found or key == opt:
      raise ValueError(f'variant {spec!r}: unknown part {opt!r} (fwdN, bwdN, stagesN)')
    found[key] = int(opt[len(key):])
  return combine, found['fwd'], found['bwd'], found['stages']


@functools.lru_cache(maxsize=64)
def widths_plan(n_blocks, num_rand_blocks, seed, causal, fwd_width, bwd_width):
  """`block_sparse.kernel_plan`'s lists, cut into work rows of these widths (None: its own)."""
  own = OWN_PLAN(n_blocks, num_rand_blocks, seed, causal)
  if fwd_width is None and bwd_width is None:
    return own
  return block_plan(block_sparse.kernel_lists(n_blocks, num_rand_blocks, seed, causal),
                    fwd_width or own.width, bwd_width or own.bwd_width)


@contextlib.contextmanager
def variant(spec):
  """Within: sparse_kernel combines split blocks, cuts the pattern and compiles as `spec` says."""
  combine, fwd_width, bwd_width, stages = parse_variant(spec)
  names = ('_parts_layout', '_forward', '_sum_parts')
  saved = [getattr(sk, n) for n in names]
  saved_plan, saved_params = block_sparse.kernel_plan, dict(sk.COMPILER_PARAMS)
  if combine == 'grouped':
    for n, fn in zip(names, (grouped_layout, grouped_forward, grouped_sum_parts)):
      setattr(sk, n, fn)
  if fwd_width or bwd_width:
    block_sparse.kernel_plan = lambda n, r, seed, causal: widths_plan(n, r, seed, causal,
                                                                      fwd_width, bwd_width)
  if stages:
    sk.COMPILER_PARAMS.update({k: (4, stages) for k in sk.COMPILER_PARAMS})
  try:
    yield
  finally:
    for n, fn in zip(names, saved):
      setattr(sk, n, fn)
    block_sparse.kernel_plan = saved_plan
    sk.COMPILER_PARAMS.update(saved_params)


def values_and_grads(causal, length, interpret):
  """Block-sparse attention (block 64 or 16 on CPU, 3 random blocks; sequence-major
  kernels, as the layer runs them) and its q/k/v gradients on float32 random inputs, in one
  jit, traced in the current variant."""
  bs = 16 if interpret else 64
  n_blocks = length // bs
  plan = block_sparse.kernel_plan(n_blocks, 3, 0, causal)
  shape = (1, 2, n_blocks * bs, 16 if interpret else 64)
  q, k, v = (jax.random.normal(key, shape, jnp.float32)
             for key in jax.random.split(jax.random.key(length), 3))
  pos = jnp.arange(shape[2], dtype=jnp.int32)[None, None]
  w = jax.random.normal(jax.random.key(1), shape, jnp.float32)
  def run(q, k, v):
    attend = lambda q, k, v: sk.sparse_attention(q, k, v, pos, pos, plan, causal, interpret,
                                                 sequence_major=True)
    out, pull = jax.vjp(attend, q, k, v)
    return (out,) + pull(w)
  return jax.jit(run)(q, k, v), len(np.unique(plan.bwd.extra_owner))


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--lengths', type=int, nargs='+', default=[16384, 65536])
  p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                 help='the first is the baseline; see parse_variant')
  p.add_argument('--check_length', type=int, default=4096,
                 help='agreement of every variant with the first (float32)')
  p.add_argument('--budget_s', type=float, default=1.0, help='per timing row; 0: check only')
  p.add_argument('--interpret', action='store_true', help='CPU: the Pallas interpreter')
  args = p.parse_args(argv)
  for spec in args.variants:
    parse_variant(spec)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  bad, base = 0, args.variants[0]
  for causal in (False, True):
    results = {}
    for spec in args.variants:
      with variant(spec):
        results[spec], n_split = values_and_grads(causal, args.check_length, args.interpret)
      errors = [rel(a, b) for a, b in zip(results[spec], results[base])]
      ok = max(errors) < 1e-5
      bad += not ok
      print(json.dumps(dict(check='agreement', variant=spec, causal=causal,
                            length=args.check_length, split_key_blocks=n_split,
                            rel_err_out_dq_dk_dv=errors, ok=ok)), flush=True)
  rows = []
  if args.budget_s > 0 and not args.interpret:
    for causal in (False, True):
      for length in args.lengths:
        for spec in args.variants:
          with variant(spec):
            for kind, (step, xs) in (
                ('core', block_sparse_core_step(causal, length)[:2]),
                ('layer', layer_step(MAKERS['block_sparse_pallas'](causal, length), length))):
              ms, gib = measure(step, xs, args.budget_s)
              rows.append(dict(variant=spec, kind=kind, causal=causal, length=length, ms=ms,
                               gib=gib))
              print(json.dumps(rows[-1]), flush=True)
    ms = {(r['variant'], r['kind'], r['causal'], r['length']): r['ms'] for r in rows}
    print(f'\n| direction | length | kind | variant | ms | / {base} |')
    print('| --- | --- | --- | --- | --- | --- |')
    for (spec, kind, causal, length), t in ms.items():
      print(f"| {'causal' if causal else 'bidirectional'} | {length} | {kind} | {spec} | "
            f'{t:.3f} | {t / ms[(base, kind, causal, length)]:.3f} |')
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
