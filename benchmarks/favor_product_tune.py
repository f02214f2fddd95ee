"""Tune the causal FAVOR+ product kernels on the GPU, one knob at a time around the defaults.

Each setting changes one of: the output or states kernel's warps, the running sums' tile
(`favor_kernel._TILE`), the chunks per states program (`SEGMENT_CHUNKS`) or the chunk size;
it times the bare product fwd+bwd (`favor_causal_gpu.py`'s inputs: 8 heads, 256 features,
[v, 1] of 65 columns, bf16) at --length, with values and gradients compared with the
defaults' (largest difference relative to the largest value). Then the whole causal FAVOR+
layer at --layer_lengths for the defaults and the --top fastest settings (back to back).

  python benchmarks/favor_product_tune.py --out tune.json
  python benchmarks/favor_product_tune.py --tiny     # CPU smoke: small shapes, interpreter
"""
import argparse
import sys

import jax
import jax.numpy as jnp

from attention_gpu import back_to_back_ms, layer_step, measure  # pylint: disable=g-bad-import-order
from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
from favor_causal_gpu import favor_layer, product_inputs, vjp_step  # pylint: disable=g-bad-import-order
from favor_feature_tune import relative_difference  # pylint: disable=g-bad-import-order
from plait.layers.attention import favor_kernel as fk

# (output warps, states warps, tile, segment chunks, chunk size)
DEFAULT = (fk.COMPILER_PARAMS['output'][0], fk.COMPILER_PARAMS['states'][0], fk._TILE,  # pylint: disable=protected-access
           fk.SEGMENT_CHUNKS, 128)
KNOBS = ('output_warps', 'states_warps', 'tile', 'segment_chunks', 'chunk')
CHOICES = ((4, 8, 16), (4, 8), (32, 64, 128), (4, 8, 16, 32, 64), (64, 128))


def setting(output_warps, states_warps, tile, segment_chunks, chunk):
  fk.COMPILER_PARAMS = {'output': (output_warps, fk.COMPILER_PARAMS['output'][1]),
                        'states': (states_warps, fk.COMPILER_PARAMS['states'][1])}
  fk._TILE, fk.SEGMENT_CHUNKS = tile, segment_chunks  # pylint: disable=protected-access
  return chunk


def product_step(length, chunk, interpret):
  """jit(vjp) of the bare product: its output and the three gradients."""
  args = product_inputs(length, jnp.bfloat16)
  # The default's rows take the library's own choice (shorter segments on short sequences).
  segments = None if fk.SEGMENT_CHUNKS == DEFAULT[3] else fk.SEGMENT_CHUNKS
  fn = lambda *x: fk.causal_product_kernel(*x, chunk, interpret=interpret,
                                           segment_chunks=segments)
  return vjp_step(fn, *args), args


def timed(row, step, inputs, budget_s):
  """Fills row's ms (blocked median), gib and b2b_ms (back to back: what ranks settings)."""
  compiled = step.lower(*inputs).compile()
  row['ms'], row['gib'] = measure(step, inputs, budget_s, compiled)
  row['b2b_ms'] = back_to_back_ms(compiled, inputs, budget_s, row['ms'])


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--length', type=int, default=65536, help='bare product: tokens')
  p.add_argument('--layer_lengths', type=int, nargs='*', default=[16384, 65536])
  p.add_argument('--top', type=int, default=1, help='layer: this many fastest settings')
  p.add_argument('--budget_s', type=float, default=0.3)
  p.add_argument('--out', default=None)
  p.add_argument('--tiny', action='store_true', help='CPU smoke: small shapes, interpreter')
  args = p.parse_args(argv)
  length = 300 if args.tiny else args.length
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  step, inputs = product_step(length, setting(*DEFAULT), args.tiny)
  reference = step(*inputs)
  settings = [DEFAULT]
  for i, choices in enumerate(CHOICES):
    settings += [DEFAULT[:i] + (c,) + DEFAULT[i + 1:] for c in choices if c != DEFAULT[i]]
  if args.tiny:
    settings = settings[:3]
  rows = []
  for s in settings:
    step, inputs = product_step(length, setting(*s), args.tiny)
    def fill(row, step=step, inputs=inputs):
      row['rel_diff'] = relative_difference(step(*inputs), reference)
      timed(row, step, inputs, args.budget_s)
    rows.append(measured(dict(part='product', length=length, **dict(zip(KNOBS, s))), fill))
    save_rows(rows, args.out)
  fastest = sorted((r for r in rows if 'ms' in r), key=lambda r: r['b2b_ms'])
  chosen = [DEFAULT] + [tuple(r[k] for k in KNOBS) for r in fastest
                        if tuple(r[k] for k in KNOBS) != DEFAULT][:args.top]
  for s in chosen:
    for n in [] if args.tiny else args.layer_lengths:
      chunk = setting(*s)
      def fill(row, n=n, chunk=chunk):
        timed(row, *layer_step(favor_layer('pallas', chunk)(True, n), n), args.budget_s)
      rows.append(measured(dict(part='layer', length=n, **dict(zip(KNOBS, s))), fill))
      save_rows(rows, args.out)
  setting(*DEFAULT)
  return 0


if __name__ == '__main__':
  sys.exit(main())
