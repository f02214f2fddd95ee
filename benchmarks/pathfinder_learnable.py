"""Can a small CNN learn plait's generated Pathfinder? A check of the data, not a model.

  python benchmarks/pathfinder_learnable.py            # CPU, ~15 min: ~90 % by step 1,000
  python benchmarks/pathfinder_learnable.py --train 256 --valid 64 --steps 2 --every 1   # smoke

A stack of 3x3 convolutions with dilations 1, 1, 2, 2, 4, 4, 8, 8 (receptive field 61 pixels,
the whole 32x32 image), ReLU, max and mean pooling, then a linear head; Adam 1e-3, batch 128,
pixels scaled to [0, 1]. Prints the last batch's loss and the validation accuracy every
--every steps. If labels did not follow the images, validation would stay at 50 %.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plait.data.lra import lra_pathfinder_inputs

DILATIONS = (1, 1, 2, 2, 4, 4, 8, 8)


def images(split, n, workers):
  """(n, 32, 32, 1) float32 pixels in [0, 1] and (n,) labels of a split's first n examples."""
  make = lra_pathfinder_inputs(split=split, batch_size=n, n_examples=n, workers=workers)
  inputs, targets, _ = next(make())
  return np.asarray(inputs, np.float32).reshape(n, 32, 32, 1) / 255.0, np.asarray(targets)


def init(rng, channels):
  """Weights: a (kernel, bias) pair per convolution, then the head's (kernel, bias)."""
  convs, c_in = [], 1
  for _ in DILATIONS:
    rng, key = jax.random.split(rng)
    kernel = jax.random.normal(key, (3, 3, c_in, channels)) * np.sqrt(2.0 / (9 * c_in))
    convs.append((kernel, jnp.zeros(channels)))
    c_in = channels
  head = jax.random.normal(rng, (2 * channels, 2)) * 0.1
  return convs, (head, jnp.zeros(2))


def logits(weights, x):
  """(B, 32, 32, 1) pixels -> (B, 2) logits."""
  convs, (head, head_bias) = weights
  for (kernel, bias), dilation in zip(convs, DILATIONS):
    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', rhs_dilation=(dilation,) * 2,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    x = jax.nn.relu(x + bias)
  return jnp.concatenate([x.max((1, 2)), x.mean((1, 2))], -1) @ head + head_bias


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
  p.add_argument('--train', type=int, default=40_000, help='training images')
  p.add_argument('--valid', type=int, default=2_000, help='validation images')
  p.add_argument('--steps', type=int, default=1_500)
  p.add_argument('--every', type=int, default=250)
  p.add_argument('--channels', type=int, default=16)
  p.add_argument('--workers', type=int, default=2, help='processes making the images')
  args = p.parse_args(argv)
  start = time.perf_counter()
  x_train, y_train = images('train', args.train, args.workers)
  x_valid, y_valid = images('validation', args.valid, args.workers)
  print(f'made {args.train} + {args.valid} images in {time.perf_counter() - start:.0f} s',
        flush=True)
  optimizer = optax.adam(1e-3)
  weights = init(jax.random.PRNGKey(0), args.channels)
  opt_state = optimizer.init(weights)

  @jax.jit
  def step(weights, opt_state, x, y):
    loss_fn = lambda w: optax.softmax_cross_entropy_with_integer_labels(logits(w, x), y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(weights)
    updates, opt_state = optimizer.update(grads, opt_state, weights)
    return optax.apply_updates(weights, updates), opt_state, loss

  right = jax.jit(lambda w, x, y: jnp.sum(jnp.argmax(logits(w, x), -1) == y))
  order = np.random.default_rng(0)
  start = time.perf_counter()
  for i in range(1, args.steps + 1):
    batch = order.integers(0, args.train, 128)
    weights, opt_state, loss = step(weights, opt_state, x_train[batch], y_train[batch])
    if i % args.every == 0 or i == args.steps:
      hits = sum(int(right(weights, x_valid[j:j + 500], y_valid[j:j + 500]))
                 for j in range(0, args.valid, 500))
      print(f'step {i}: loss {float(loss):.4f}, validation {100 * hits / args.valid:.2f} %, '
            f'{time.perf_counter() - start:.0f} s', flush=True)


if __name__ == '__main__':
  main()
