"""Does a Pathfinder model learn the same on its GPU attention kernels as on XLA?

  python benchmarks/pathfinder_kernels_gpu.py --config lra_pathfinder_bigbird --steps 3000
  python benchmarks/pathfinder_kernels_gpu.py --config lra_pathfinder_bigbird_tiny \
      --implementations xla interpret --batch 4 --steps 2 --every 1 --n_examples 64   # CPU

The config's model as shipped (dropout, positions, padding mask, compaction), its attention
layers switched between implementations ('auto': the Pallas kernels on a GPU; 'xla';
'interpret': the kernels through the Pallas interpreter, any backend, slow).
(1) One validation batch (eval mode, up to 128 images): the loss and gradients in bf16 (the
trainer's cast) per implementation against float32 XLA: the whole gradient's relative error
and its worst leaves (a key-projection bias has no true gradient: its relative error is
noise). (2) Training from the same initial weights on the same batches once per
implementation, with plait's train step (bf16 compute) and the config's optimizer and
schedule: mean loss and gradient norm and the validation accuracy every --every steps.
Kernels that compute the same attention train the same way up to bf16 rounding.
"""
import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plait import layers as tl
from plait.data.lra import lra_pathfinder_inputs
from plait.layers.base import walk_layers
from plait.supervised.train_step import make_eval_step, make_train_step, stack_after_model
from shipped import shipped_model, shipped_optimizer  # pylint: disable=g-bad-import-order


def set_implementation(models, implementation):
  """Points every attention layer of `models` at `implementation` (None = auto)."""
  for model in models:
    for layer in walk_layers(model):
      if isinstance(layer, tl.Attention):
        layer.kind.implementation = implementation


def loss_fn(model, state, dtype):
  def loss(weights, x, y, rng):
    (logits,), _ = stack_after_model(model, (x,), weights, state, rng, dtype)
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()
  return loss


def gradient_errors(models, weights, batch, implementations):
  """Prints each bf16 implementation's loss and gradient against float32 XLA."""
  _, eval_model = models
  x, y = batch
  state = eval_model.init(jax.ShapeDtypeStruct(x.shape, jnp.int32), jax.random.key(0))[1]
  grads = {}
  for name, impl, dtype in [('float32 xla', 'xla', None)] + [
      (f'bf16 {i}', i, jnp.bfloat16) for i in implementations]:
    set_implementation(models, None if impl == 'auto' else impl)
    value, grads[name] = jax.jit(jax.value_and_grad(loss_fn(eval_model, state, dtype)))(
        weights, x, y, None)
    print(f'{name}: loss {float(value):.6f}, gradient norm '
          f'{float(optax.global_norm(grads[name])):.6f}', flush=True)
  paths, reference = zip(*jax.tree_util.tree_leaves_with_path(grads.pop('float32 xla')))
  total = float(optax.global_norm(reference))
  for name, g in grads.items():
    errors = [float(jnp.linalg.norm(a.astype(jnp.float32) - b))
              for a, b in zip(jax.tree_util.tree_leaves(g), reference)]
    relative = [e / (float(jnp.linalg.norm(b)) + 1e-30) for e, b in zip(errors, reference)]
    print(f'{name} vs float32 xla: whole gradient {np.linalg.norm(errors) / total:.3e}, median '
          f'leaf {np.median(relative):.3e}; worst leaves:', flush=True)
    for j in np.argsort(relative)[-3:][::-1]:
      print(f'  {jax.tree_util.keystr(paths[j])}: {relative[j]:.2e} (float32 norm '
            f'{float(jnp.linalg.norm(reference[j])):.2e})', flush=True)


def train(models, weights, state, implementation, data, valid_batches, args):
  """Trains from `weights` on `data()`'s batches with plait's train and eval steps and the
  config's optimizer; prints progress every args.every steps."""
  model, eval_model = models
  set_implementation(models, None if implementation == 'auto' else implementation)
  optimizer = shipped_optimizer(args.config)
  step = jax.jit(make_train_step(model, tl.CrossEntropyLoss(), optimizer, jnp.bfloat16))
  accuracy = jax.jit(make_eval_step(eval_model, [tl.Accuracy()], jnp.bfloat16))
  batches, opt_state = data(), optimizer.init(weights)
  start, losses, norms = time.perf_counter(), [], []
  for i in range(1, args.steps + 1):
    out = step(weights, state, opt_state, next(batches), jax.random.key(i))
    weights, state, opt_state = out.weights, out.state, out.opt_state
    losses.append(out.loss)
    norms.append(out.gradient_norm)
    if i % args.every == 0 or i == args.steps:
      scored = sum(float(accuracy(weights, state, b, None)[0]) * len(b[1])
                   for b in valid_batches)
      print(f'{implementation} step {i}: loss {float(jnp.mean(jnp.stack(losses))):.4f}, '
            f'gradient norm {float(jnp.mean(jnp.stack(norms))):.4f}, validation '
            f'{100 * scored / sum(len(b[1]) for b in valid_batches):.1f} %, '
            f'{time.perf_counter() - start:.0f} s', flush=True)
      losses, norms = [], []


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
  p.add_argument('--config', default='lra_pathfinder_bigbird')
  p.add_argument('--implementations', nargs='+', default=['auto', 'xla'],
                 choices=['auto', 'xla', 'interpret'])
  p.add_argument('--steps', type=int, default=3000)
  p.add_argument('--every', type=int, default=500)
  p.add_argument('--batch', type=int, default=512)
  p.add_argument('--valid_batches', type=int, default=4)
  p.add_argument('--n_examples', type=int, default=None, help='examples per split (default all)')
  p.add_argument('--splits_dir', default=None, help="lra_pathfinder_inputs' cache_dir")
  p.add_argument('--data_workers', type=int, default=max(1, (os.cpu_count() or 1) - 2),
                 help='processes that make each split up front (0: as batches are read, '
                 '~350 images/s: too slow to feed a GPU)')
  args = p.parse_args(argv)
  split = lambda name: lra_pathfinder_inputs(name, args.batch, n_examples=args.n_examples,
                                             workers=args.data_workers,
                                             cache_dir=args.splits_dir)
  valid = split('validation')()
  valid_batches = [tuple(next(valid)) for _ in range(args.valid_batches)]
  models = tuple(shipped_model(args.config, mode) for mode in ('train', 'eval'))
  weights, state = models[0].init(
      jax.ShapeDtypeStruct(valid_batches[0][0].shape, jnp.int32), jax.random.key(0))
  x, y = valid_batches[0][:2]
  gradient_errors(models, weights, (x[:128], y[:128]), args.implementations)
  for implementation in args.implementations:
    train(models, weights, state, implementation, split('train'), valid_batches, args)


if __name__ == '__main__':
  main()
