"""Can the Pathfinder Transformer read where the two dots are? Images of the dots alone.

  python benchmarks/pathfinder_dots.py --positional learned      # CPU, ~7 min: memorizes
  python benchmarks/pathfinder_dots.py --positional sinusoidal   # CPU, ~7 min: reads some
  python benchmarks/pathfinder_dots.py --positional octave       # CPU, ~7 min: reads it all
  python benchmarks/pathfinder_dots.py --model bigbird --positional octave   # on a GPU
  python benchmarks/pathfinder_dots.py --train 64 --valid 32 --steps 2 --every 1   # smoke
  python benchmarks/pathfinder_dots.py --model reformer --positional octave --images scattered \
      --set n_buckets=1 --set pooling="'cls'"   # dots among scattered dash pixels, CLS

The images keep the two dots of each Pathfinder scene and drop every dash, and keep the
scene's label: the dots' distance alone predicts it 80 % of the time (pathfinder_cues.py), and
nothing else is left to read. `--model`'s encoder as its shipped Pathfinder config builds it
(lra_pathfinder_<model>.gin; the Transformer: 4 layers of 32, 4 heads, MLP 32, head MLP 32,
mean pooling, black pixels masked), without dropout and with --positional, trains on them
with Adam 1e-3, batch 256. The Transformer, Performer and Reformer compact the lit pixels
(~10 tokens an image); the kinds that attend by position (BigBird, Local) see all 1,024, which
on a CPU is slow (batch 64: BigBird ~7 s a step, Local ~1.5 s, on 2 cores). Prints the loss and
the accuracy on training and held-out images every --every steps: a model that reads the
positions generalizes towards 80 %; one that memorizes its images climbs on the training
images only. --images full trains on the whole images instead (256 tokens: much slower).
--images scattered keeps the dots where they are and adds --distractors of the scene's dash
pixels (their gray values) at random free places: the distance is still the only cue, but the
model must find the dots among other lit pixels (content-based attention to a few tokens, which
shared-QK attention cannot give every query at once). --set NAME=VALUE changes the encoder's
setting NAME (a Python literal) over the shipped config's, e.g. --set pooling="'cls'".
--seed draws another initialization and batch order on the same images.
"""
import argparse
import ast
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plait.data.lra import pathfinder
from plait.data.lra.common import SPLITS
from shipped import binds, shipped_model  # pylint: disable=g-bad-import-order

RESOLUTION = 32
MODELS = ('transformer', 'reformer', 'performer', 'bigbird', 'local')


def dots_image(scene):
  """uint8 (32, 32): the scene's two dots alone, anti-aliased as `pathfinder.render` draws."""
  ink = pathfinder.marker_ink(scene, RESOLUTION * pathfinder.SUPERSAMPLE)
  return pathfinder.pixels(ink, RESOLUTION)


def scattered_image(scene, n_distractors, rng):
  """uint8 (32, 32): the scene's two dots where they are, plus `n_distractors` of its dash
  pixels (gray values drawn without replacement) at random free places: no contour is left."""
  dots = dots_image(scene).reshape(-1)
  whole = pathfinder.render(scene, RESOLUTION).reshape(-1)
  values = whole[(whole > 0) & (dots == 0)]
  values = rng.choice(values, min(n_distractors, values.size), replace=False)
  out = dots.copy()
  out[rng.choice(np.flatnonzero(dots == 0), values.size, replace=False)] = values
  return out.reshape(RESOLUTION, RESOLUTION)


def images(split, n, kind, n_distractors=40):
  """(int32 (n, 1024) pixel tokens, int32 (n,) labels) of a split's first n scenes, drawn as
  `kind`: 'dots', 'full' or 'scattered' (scene i's distractors seeded by (split, i))."""
  examples = pathfinder.PathfinderExamples(split, 0, n, RESOLUTION)
  scenes = [examples.scene(i) for i in range(n)]
  split_id = SPLITS.index(split)
  draw = {'dots': lambda i, sc: dots_image(sc),
          'full': lambda i, sc: pathfinder.render(sc, RESOLUTION),
          'scattered': lambda i, sc: scattered_image(
              sc, n_distractors, np.random.default_rng([split_id, i]))}[kind]
  return (np.stack([draw(i, sc).reshape(-1) for i, sc in enumerate(scenes)]).astype(np.int32),
          np.array([sc.label for sc in scenes], np.int32))


def encoders(model, positional, positional_init_std, compact_to, extra=None):
  """lra_pathfinder_<model>.gin's encoder in train and eval mode, with no dropout,
  `positional`, where the config compacts `compact_to` tokens, and the `extra` settings."""
  config = f'lra_pathfinder_{model}'
  settings = {'dropout': 0.0, 'positional': positional,
              **({'positional_init_std': positional_init_std} if positional == 'learned' else {}),
              **({'compact_to': compact_to} if binds(config, 'compact_to') else {}),
              **(extra or {})}
  return tuple(shipped_model(config, mode, **settings) for mode in ('train', 'eval'))


def _setting(text):
  """'NAME=VALUE' -> (NAME, the Python literal VALUE), for --set."""
  name, sep, value = text.partition('=')
  try:
    if not (sep and name.isidentifier()):
      raise ValueError
    return name, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    raise argparse.ArgumentTypeError(
        f"expected NAME=VALUE with VALUE a Python literal (e.g. pooling='cls'), got {text!r}"
    ) from None


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
  p.add_argument('--model', choices=MODELS, default='transformer')
  p.add_argument('--positional', choices=('sinusoidal', 'octave', 'learned'),
                 default='sinusoidal')
  p.add_argument('--positional_init_std', type=float, default=0.02,
                 help='with --positional learned (LRA: 0.02; plait default 1.0)')
  p.add_argument('--images', choices=('dots', 'full', 'scattered'), default='dots')
  p.add_argument('--distractors', type=int, default=40,
                 help='with --images scattered: dash pixels added at random free places')
  p.add_argument('--set', action='append', default=[], type=_setting, metavar='NAME=VALUE',
                 help="an encoder setting over the shipped config's, VALUE a Python literal, "
                      'e.g. n_buckets=1 or pooling="\'cls\'" (repeatable)')
  p.add_argument('--train', type=int, default=20_000, help='training images')
  p.add_argument('--valid', type=int, default=2_000, help='held-out (validation) images')
  p.add_argument('--steps', type=int, default=1_500)
  p.add_argument('--every', type=int, default=250)
  p.add_argument('--batch', type=int, default=256)
  p.add_argument('--seed', type=int, default=0,
                 help='initial weights (key(seed)), batch order (default_rng(seed)) and step '
                      "i's rng (key(seed * steps + i)); the images stay the same")
  args = p.parse_args(argv)
  full = args.images == 'full'
  start = time.perf_counter()
  x_train, y_train = images('train', args.train, args.images, args.distractors)
  x_valid, y_valid = images('validation', args.valid, args.images, args.distractors)
  lit = int(max((x_train > 0).sum(1).max(), (x_valid > 0).sum(1).max()))
  compact_to = 256 if full else max(16, -(-lit // 16) * 16)   # every lit pixel kept
  print(f'made {args.train} + {args.valid} {args.images} images in '
        f'{time.perf_counter() - start:.0f} s; at most {lit} lit pixels, compact_to {compact_to}',
        flush=True)
  model, eval_model = encoders(args.model, args.positional, args.positional_init_std,
                               compact_to, dict(args.set))
  weights, state = model.init(jax.ShapeDtypeStruct((args.batch, RESOLUTION ** 2), jnp.int32),
                              jax.random.key(args.seed))
  optimizer = optax.adam(1e-3)
  opt_state = optimizer.init(weights)

  @jax.jit
  def step(weights, opt_state, x, y, rng):
    def loss_fn(w):
      logits = model.pure_fn(x, w, state, rng)[0]
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(weights)
    updates, opt_state = optimizer.update(grads, opt_state, weights)
    return optax.apply_updates(weights, updates), opt_state, loss

  # No encoder keeps state shaped by the batch, so the last, shorter batch takes it too.
  eval_state = eval_model.init(jax.ShapeDtypeStruct((args.batch, RESOLUTION ** 2), jnp.int32),
                               jax.random.key(0))[1]
  right = jax.jit(lambda w, x, y: jnp.sum(
      jnp.argmax(eval_model.pure_fn(x, w, eval_state, None)[0], -1) == y))

  def accuracy(w, x, y):
    return 100 * sum(int(right(w, x[j:j + args.batch], y[j:j + args.batch]))
                     for j in range(0, len(y), args.batch)) / len(y)

  order = np.random.default_rng(args.seed)
  start = time.perf_counter()
  for i in range(1, args.steps + 1):
    batch = order.integers(0, args.train, args.batch)
    weights, opt_state, loss = step(weights, opt_state, x_train[batch], y_train[batch],
                                    jax.random.key(args.seed * args.steps + i))
    if i % args.every == 0 or i == args.steps:
      seen = min(args.train, args.valid)
      trained = accuracy(weights, x_train[:seen], y_train[:seen])
      print(f'step {i}: loss {float(loss):.4f}, training images {trained:.1f} %, '
            f'held-out {accuracy(weights, x_valid, y_valid):.1f} %, '
            f'{time.perf_counter() - start:.0f} s', flush=True)


if __name__ == '__main__':
  main()
