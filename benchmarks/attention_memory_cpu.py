"""Compiled memory of attention forward + backward vs sequence length, on CPU.

For every attention kind that `plait.layers` exports (dense, chunked, LSH, FAVOR+,
block-sparse; missing ones are skipped with a note) this builds a 1-batch, 2-head layer
with d_head 64, jits grad(sum(layer(x))) with respect to the weights and x, and reads
XLA's `compiled.memory_analysis()`. Nothing is executed, so 16k tokens of dense
attention cost only compile time. Temp memory is what grows with the attention pattern:
x4 per x4 length means linear, x16 quadratic.

  /work/venv/bin/python benchmarks/attention_memory_cpu.py --lengths 1024 4096 16384
"""
import argparse
import datetime
import sys

import jax
import jax.numpy as jnp

import plait.layers as tl
from plait.shapes import ShapeDtype

MIB = 2.0 ** 20


def kind_configs(window):
  """(name in plait.layers, constructor kwargs) of each kind, local windows `window` long."""
  return [
      ('SelfAttention', {}),
      ('CausalAttention', {}),
      ('ChunkedCausalAttention', dict(chunk_len=window, n_chunks_before=1)),
      ('LSHSelfAttention', dict(chunk_len=window, n_hashes=2)),
      ('FavorAttention', dict(nb_features=256)),
      ('CausalFavorAttention', dict(nb_features=256)),
      ('BlockSparseAttention', dict(block_size=window)),
      ('CausalBlockSparseAttention', dict(block_size=window)),
  ]


def compiled_memory(layer, length, d_model, batch=1):
  """memory_analysis() of jit(grad wrt (weights, x) of sum(outputs)) at this length."""
  sig = ShapeDtype((batch, length, d_model), jnp.float32)
  weights, state = layer.init(sig, rng=jax.random.key(0))
  def loss(weights, x, state, rng):
    y, _ = layer.pure_fn(x, weights, state, rng)
    return jnp.sum(y)
  grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
  x = jax.ShapeDtypeStruct(sig.shape, sig.dtype)
  compiled = grad_fn.lower(weights, x, state, jax.random.key(1)).compile()
  return compiled.memory_analysis()


def measure(lengths, n_heads=2, d_head=64, window=64, kinds=None):
  """Rows {kind, length, temp, args, out, ratio, error} and notes on skipped kinds.

  kinds: names to measure (default: all of `kind_configs`).
  """
  rows, notes = [], []
  d_model = n_heads * d_head
  for name, kwargs in kind_configs(window):
    if kinds is not None and name not in kinds:
      continue
    constructor = getattr(tl, name, None)
    if constructor is None:
      notes.append(f'{name}: not in plait.layers yet, skipped.')
      continue
    previous = None
    for length in lengths:
      row = dict(kind=name, length=length, config=kwargs)
      try:
        layer = constructor(d_model, n_heads=n_heads, mode='train', **kwargs)
        mem = compiled_memory(layer, length, d_model)
        row.update(temp=mem.temp_size_in_bytes, args=mem.argument_size_in_bytes,
                   out=mem.output_size_in_bytes)
        row['ratio'] = None if previous is None else row['temp'] / max(previous, 1)
        previous = row['temp']
      except Exception as e:  # pylint: disable=broad-except
        row['error'] = f'{type(e).__name__}: {str(e).splitlines()[-1][:120]}'
        previous = None
      rows.append(row)
  return rows, notes


def markdown(rows, notes):
  """The rows as a Markdown table (MiB), then the notes."""
  lines = ['| kind | config | L | temp MiB | temp vs previous L | args MiB | output MiB |',
           '|---|---|---:|---:|---:|---:|---:|']
  for r in rows:
    config = ', '.join(f'{k}={v}' for k, v in r['config'].items()) or 'defaults'
    if 'error' in r:
      lines.append(f"| {r['kind']} | {config} | {r['length']} | failed: {r['error']} | | | |")
      continue
    ratio = '' if r['ratio'] is None else f"x{r['ratio']:.1f}"
    lines.append(f"| {r['kind']} | {config} | {r['length']} | {r['temp'] / MIB:.1f} | {ratio} "
                 f"| {r['args'] / MIB:.2f} | {r['out'] / MIB:.2f} |")
  return '\n'.join(lines + [''] + [f'- {n}' for n in notes])


def main(lengths=(1024, 4096, 16384), n_heads=2, d_head=64, window=64, kinds=None,
         out=sys.stdout):
  """Measures, prints the report to `out` and returns (rows, notes)."""
  rows, notes = measure(lengths, n_heads, d_head, window, kinds)
  header = (f'# Attention memory vs length (CPU, compiled memory_analysis)\n\n'
            f'- date: {datetime.date.today().isoformat()}\n'
            f'- command: `python benchmarks/attention_memory_cpu.py --lengths '
            f'{" ".join(map(str, lengths))} --n_heads {n_heads} --d_head {d_head} '
            f'--window {window}{" --kinds " + " ".join(kinds) if kinds else ""}`\n'
            f'- jax {jax.__version__}, backend {jax.default_backend()}; batch 1, {n_heads} heads, '
            f'd_head {d_head}, float32, mode train; jit(grad of sum(outputs) wrt weights and x),'
            f' compiled only (not run).\n'
            f'- temp = XLA temp buffers of forward + backward; "temp vs previous L" is the '
            f'ratio to the row above: the length ratio r means linear growth, r^2 quadratic.\n')
  print(header, file=out)
  print(markdown(rows, notes), file=out)
  return rows, notes


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--lengths', type=int, nargs='+', default=[1024, 4096, 16384])
  parser.add_argument('--n_heads', type=int, default=2)
  parser.add_argument('--d_head', type=int, default=64)
  parser.add_argument('--window', type=int, default=64,
                      help='chunk_len of chunked/LSH attention and block_size of block-sparse.')
  parser.add_argument('--kinds', nargs='+', default=None,
                      help='layer names to measure (default: all available).')
  args = parser.parse_args()
  main(args.lengths, args.n_heads, args.d_head, args.window, args.kinds)
