"""FAVOR+ on the GPU: the Pallas kernels' correctness (causal and bidirectional), then speed.

  python benchmarks/favor_causal_gpu.py --out favor.json          # checks, then the table
  python benchmarks/favor_causal_gpu.py --lengths 4096 --skip_checks

Checks (printed as JSON rows, exit 1 if one fails): the bare product in bf16 against the
float32 XLA path on the same bf16-rounded inputs, and the CausalFavorAttention layer with
implementation='pallas' against implementation='xla' (bf16 weights and inputs), values
and gradients, as relative L2 errors; plus fp32 inputs against the exact quadratic product.
Bidirectional: the bare `favor_attention_kernel` in bf16 (per-head projections, padded keys)
against the float32 XLA path on the same bf16-rounded inputs, and FavorAttention with
implementation='pallas' against 'xla' in train mode (features redrawn per head).
Timing rows (the layers of attention_gpu.py: one `Attention`, 8 heads of 64, bf16, batch 1,
fwd+bwd): causal FAVOR+ through the kernels (`favor_pallas`, chunk 128, and
`favor_pallas_c64`) and through XLA (`favor_xla`), bidirectional FAVOR+ through its kernels
(`favor`, auto) and through XLA (`favor_xla`), the
cuDNN layer and bare cuDNN flash (`flash-core`), and the bare product (`product-core-*`,
(8, L, 256) x (8, L, 65), fwd+bwd) and
each of its two forward kernels alone (`states-fwd`, `output-fwd`, at the longest length). `tflops` counts the chunked product's matmul FLOPs
(4 products per fwd+bwd, unpadded widths; features not counted) over the measured time.
"""
import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from attention_gpu import (  # pylint: disable=g-bad-import-order
    D_HEAD, D_MODEL, MAKERS, N_HEADS, flash_core_step, layer_step, measure, print_table)
from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
import plait.layers as tl
from plait.layers.attention.favor_causal import causal_product
from plait.layers.attention import favor_kernel
from plait.layers.attention.favor_bidir_kernel import favor_attention_kernel
from plait.layers.attention.favor_features import orthogonal_random_features
from plait.layers.attention.favor_kernel import causal_product_kernel
from plait.shapes import ShapeDtype

M = 256  # nb_features
KERNEL = {'interpret': False}  # --interpret: the Pallas interpreter (CPU dry runs).
TOLERANCE = {'bf16_product': 2e-2, 'bf16_layer': 3e-2, 'fp32_exact': 1e-2,
             'bf16_bidir_kernel': 2e-2, 'bf16_bidir_layer': 3e-2}


def rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def product_inputs(length, dtype, pairs=N_HEADS):
  """Positive features like FAVOR+'s (row max about 1) and [values, 1]."""
  keys = jax.random.split(jax.random.key(0), 3)
  a = jnp.exp(-2 * jax.random.uniform(keys[0], (pairs, length, M)))
  b = jnp.exp(-2 * jax.random.uniform(keys[1], (pairs, length, M)))
  v = jax.random.normal(keys[2], (pairs, length, D_HEAD))
  c = jnp.concatenate([v, jnp.ones((pairs, length, 1))], -1)
  return [t.astype(dtype) for t in (a, b, c)]


def vjp_step(fn, *args):
  """jit of args -> (fn's output, its vjp against a fixed random cotangent)."""
  w = jax.random.normal(jax.random.key(9), jax.eval_shape(fn, *args).shape, jnp.float32)
  def run(*args):
    out, pull = jax.vjp(fn, *args)
    return (out,) + pull(w.astype(out.dtype))
  return jax.jit(run)


def vjp_all(fn, *args):
  return vjp_step(fn, *args)(*args)


def check_product_bf16(length):
  args = product_inputs(length, jnp.bfloat16)
  got = vjp_all(lambda *x: causal_product_kernel(*x, 128, interpret=KERNEL['interpret']), *args)
  up = [t.astype(jnp.float32) for t in args]
  with jax.default_matmul_precision('highest'):
    want = vjp_all(jax.vmap(lambda *x: causal_product(*x, 128)), *up)
  return {n: rel(g, w) for n, g, w in zip(('out', 'da', 'db', 'dc'), got, want)}


def check_product_exact(length):
  args = product_inputs(length, jnp.float32, pairs=2)
  got = vjp_all(lambda *x: causal_product_kernel(*x, 64, interpret=KERNEL['interpret']), *args)
  with jax.default_matmul_precision('highest'):
    exact = lambda a, b, c: jnp.tril(jnp.einsum('psa,pta->pst', a, b)) @ c
    want = vjp_all(exact, *args)
  return {n: rel(g, w) for n, g, w in zip(('out', 'da', 'db', 'dc'), got, want)}


def layer_kernel_vs_xla_bf16(make_layer, batch, length):
  """Relative errors of a layer's kernel path against its XLA path (bf16 weights and inputs):
  make_layer(implementation) -> layer."""
  outs = {}
  for impl in ('pallas', 'xla'):
    impl = 'interpret' if impl == 'pallas' and KERNEL['interpret'] else impl
    layer = make_layer(impl)
    sig = ShapeDtype((batch, length, D_MODEL), jnp.bfloat16)
    weights, state = layer.init(sig, rng=jax.random.key(0))
    weights = jax.tree_util.tree_map(lambda w: w.astype(jnp.bfloat16), weights)
    x = jax.random.normal(jax.random.key(1), sig.shape, jnp.bfloat16)
    fn = lambda x, w: layer.pure_fn(x, w, state, rng=jax.random.key(2))[0]
    out, dx, dw = vjp_all(fn, x, weights)
    outs[impl] = [out, dx] + jax.tree_util.tree_leaves(dw)
  kernel = outs['interpret' if KERNEL['interpret'] else 'pallas']
  errs = [rel(g, w) for g, w in zip(kernel, outs['xla'])]
  return {'out': errs[0], 'dx': errs[1], 'dweights_max': max(errs[2:])}


def check_layer_bf16(length):
  return layer_kernel_vs_xla_bf16(lambda impl: tl.CausalFavorAttention(
      D_MODEL, N_HEADS, nb_features=M, mode='eval', implementation=impl), 1, length)


def check_bidir_kernel_bf16(length):
  """The bare bidirectional kernels vs the float32 XLA path (padded keys, per-head features)."""
  batch, keys = 2, jax.random.split(jax.random.key(3), 4)
  q, k, v = (jax.random.normal(key, (batch, N_HEADS, length, D_HEAD), jnp.bfloat16)
             for key in keys[:3])
  projection = jax.vmap(lambda key: orthogonal_random_features(key, M, D_HEAD))(
      jax.random.split(keys[3], N_HEADS))
  mask = jnp.arange(length)[None] < jnp.asarray([length, length - 333])[:, None]
  got = vjp_all(lambda q, k, v: favor_attention_kernel(
      q, k, v, mask, projection, interpret=KERNEL['interpret']), q, k, v)
  kind = tl.FavorKind(M, causal=False, recompute_features=False)
  over_heads = jax.vmap(kind._attend_full, in_axes=(0, 0, 0, None, 0))  # pylint: disable=protected-access
  xla = jax.vmap(over_heads, in_axes=(0, 0, 0, 0, None))
  up = lambda t: t.astype(jnp.float32)
  with jax.default_matmul_precision('highest'):
    want = vjp_all(lambda q, k, v: xla(up(q), up(k), up(v), mask, projection), q, k, v)
  return {n: rel(g, w) for n, g, w in zip(('out', 'dq', 'dk', 'dv'), got, want)}


def check_bidir_layer_bf16(length):
  """Train mode: the features are redrawn per head, the same on both paths."""
  return layer_kernel_vs_xla_bf16(lambda impl: tl.FavorAttention(
      D_MODEL, N_HEADS, nb_features=M, mode='train', implementation=impl), 2, length)


def checks(length):
  ok = True
  for name, fn, arg in (('bf16_product', check_product_bf16, length),
                        ('bf16_layer', check_layer_bf16, length),
                        ('fp32_exact', check_product_exact, 1024),
                        ('bf16_bidir_kernel', check_bidir_kernel_bf16, length),
                        ('bf16_bidir_layer', check_bidir_layer_bf16, length)):
    row = measured(dict(check=name, length=arg, tolerance=TOLERANCE[name]),
                   lambda row, fn=fn, arg=arg: row.update(errors=fn(arg)))
    good = 'errors' in row and max(row['errors'].values()) < TOLERANCE[name]
    ok = ok and good
    print(json.dumps(dict(check=name, passed=good)), flush=True)
  return ok


def favor_layer(implementation, chunk_size=128):
  def make(causal, length):
    del length
    impl = 'interpret' if implementation == 'pallas' and KERNEL['interpret'] else implementation
    if not causal:
      return tl.FavorAttention(D_MODEL, N_HEADS, nb_features=M, mode='eval',
                               implementation=impl)
    return tl.CausalFavorAttention(D_MODEL, N_HEADS, nb_features=M, mode='eval',
                                   chunk_size=chunk_size, implementation=impl)
  return make


def product_core_step(implementation, length):
  args = product_inputs(length, jnp.bfloat16)
  if implementation == 'pallas':
    fn = lambda *x: causal_product_kernel(*x, 128, interpret=KERNEL['interpret'])
  else:
    fn = jax.vmap(lambda *x: causal_product(*x, 128))
  loss = lambda *x: jnp.sum(fn(*x).astype(jnp.float32))
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2))), args


def kernel_fwd_step(kind, length):
  """One forward kernel alone on (8, L, 256), (8, L, 256), (8, L, 64) bf16 (v's piece)."""
  a, b, c = product_inputs(length, jnp.bfloat16)
  c = c[..., :D_HEAD]
  interpret = KERNEL['interpret']
  layout = (128, favor_kernel.SEGMENT_CHUNKS)
  states = lambda b, c: favor_kernel._call_states([b], [c], layout, False, interpret)  # pylint: disable=protected-access
  if kind == 'states-fwd':
    return jax.jit(states), [b, c]
  (s,), (totals,) = jax.jit(states)(b, c)  # The totals stand in for the offsets (same shape).
  output = lambda a, b, c, s, o: favor_kernel._call_output((a,), (b,), (c,), [[s]], [[o]], layout, False, interpret, jnp.float32)[0]  # pylint: disable=protected-access
  return jax.jit(output), [a, b, c, s, totals]


def product_flops(length, chunk=128, da=M, dc=D_HEAD + 1):
  """Matmul FLOPs of 4 chunked products (fwd + 3 bwd) over all heads, unpadded widths."""
  return 4 * N_HEADS * 2 * length * (chunk * (da + dc) + 2 * da * dc)


LAYERS = {'favor_pallas': favor_layer('pallas'), 'favor_pallas_c64': favor_layer('pallas', 64),
          'favor_xla': favor_layer('xla'), 'favor': MAKERS['favor'], 'cudnn': MAKERS['cudnn']}


def timing_rows(lengths, budget_s, out):
  """Most telling rows first (a time limit keeps what was measured)."""
  plan = []
  for length in sorted(lengths, reverse=True):
    plan += [('causal', length, k) for k in ('favor_pallas', 'favor_xla', 'cudnn',
                                             'flash-core')]
    plan += [('bidirectional', length, k) for k in ('favor', 'favor_xla', 'cudnn',
                                                    'flash-core')]
  plan += [('causal', max(lengths), k) for k in ('product-core-pallas', 'product-core-xla',
                                                 'states-fwd', 'output-fwd',
                                                 'favor_pallas_c64')]
  rows = []
  for direction, length, kind in plan:
    causal = direction == 'causal'
    def fill(row, kind=kind, causal=causal, length=length):
      flops = None
      if kind == 'flash-core':
        step, xs, flops = flash_core_step(causal, length)
      elif kind in ('states-fwd', 'output-fwd'):
        step, xs = kernel_fwd_step(kind, length)
      elif kind.startswith('product-core'):
        step, xs = product_core_step(kind.rsplit('-', 1)[1], length)
        flops = product_flops(length)
      else:
        step, xs = layer_step(LAYERS[kind](causal, length), length)
        if kind.startswith('favor_') and causal:
          flops = product_flops(length, 64 if kind.endswith('c64') else 128)
      row['ms'], row['gib'] = measure(step, xs, budget_s)
      row['tokens_per_s'] = length / (row['ms'] * 1e-3)
      if flops:
        row['tflops'] = flops / (row['ms'] * 1e-3) / 1e12
    rows.append(measured(dict(kind=kind, direction=direction, length=length), fill))
    save_rows(rows, out)
  return rows


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--lengths', type=int, nargs='*', default=[4096, 16384, 65536],
                 help='timing rows at these lengths; none: the checks only')
  p.add_argument('--check_length', type=int, default=4096)
  p.add_argument('--skip_checks', action='store_true')
  p.add_argument('--budget_s', type=float, default=0.5)
  p.add_argument('--out', default=None)
  p.add_argument('--interpret', action='store_true', help='kernels in the Pallas interpreter')
  args = p.parse_args(argv)
  KERNEL['interpret'] = args.interpret
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  ok = True if args.skip_checks else checks(args.check_length)
  if args.lengths:
    print_table(timing_rows(args.lengths, args.budget_s, args.out))
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
