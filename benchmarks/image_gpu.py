"""Image completion: train ImageReformerLM on the offline 64x64 photo crops, report bits/dim.

Offline set (plait.data.images.offline_photos: photos shipped with scikit-image and
scikit-learn): the last `--held_out` photos are held out; training uses random crops of
the others, evaluation fixed random crops of the held-out ones. Bits/dim = mean
cross-entropy / ln 2 per channel value; beside it, the same held-out crops saved as PNG
(PIL, optimize=True), in bits per channel value. Then the bottom half of held-out crops is
sampled from the top half (predict-mode caches, one on-device loop) and a grid PNG is
saved: originals on the top row, completions below.

  python benchmarks/image_gpu.py --max_seconds 150 --out runs/image   # GPU
  python benchmarks/image_gpu.py --tiny --out /tmp/image              # CPU smoke
"""
import argparse
import functools
import io
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import plait.layers as tl
from plait.data import images as image_lib
from plait.models.image import ImageReformerLM
from plait.supervised import decoding, optimizers
from plait.supervised.train_step import make_train_step


def crops(photos, size, n, seed):
  """n random square crops of `photos` resized to size x size (uint8), fixed by seed."""
  rng = np.random.default_rng(seed)
  return np.stack([image_lib.resize_crop(photos[int(rng.integers(len(photos)))], size, rng)
                   for _ in range(n)])


def png_bits_per_dim(images):
  """Mean PNG size (PIL, optimize=True) in bits per channel value."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  total = 0
  for image in images:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='PNG', optimize=True)
    total += 8 * len(buf.getvalue())
  return total / images.size


def bits_per_dim(model, weights, state, images, batch):
  """Held-out cross-entropy in bits per channel value (eval-mode model)."""
  shape = images.shape[1:]

  @jax.jit
  def nats(tokens):
    logits, _ = model.pure_fn(tokens, weights, state, None)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    return -jnp.sum(jnp.take_along_axis(logp, tokens[..., None], axis=-1))

  total = sum(float(nats(jnp.asarray(image_lib.images_to_tokens(images[i:i + batch], shape))))
              for i in range(0, len(images), batch))
  return total / images.size / math.log(2)


def save_grid(path, rows):
  """rows: list of (n, H, W, 3) uint8 arrays -> one PNG grid with 2-pixel gaps."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  n, h, w, _ = rows[0].shape
  grid = np.full((len(rows) * (h + 2), n * (w + 2), 3), 255, np.uint8)
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      grid[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = image
  Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--size', type=int, default=64)
  p.add_argument('--d_model', type=int, default=512)
  p.add_argument('--d_ff', type=int, default=2048)
  p.add_argument('--n_layers', type=int, default=6)
  p.add_argument('--n_heads', type=int, default=8)
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--lr', type=float, default=5e-4)
  p.add_argument('--steps', type=int, default=100000)
  p.add_argument('--max_seconds', type=float, default=150)
  p.add_argument('--held_out', type=int, default=3, help='photos held out for evaluation')
  p.add_argument('--chunk_len', type=int, default=128, help='LSH chunk length')
  p.add_argument('--n_eval', type=int, default=32, help='held-out crops for bits/dim')
  p.add_argument('--n_complete', type=int, default=4, help='images completed in the grid')
  p.add_argument('--samples', type=int, default=2, help='completions per image')
  p.add_argument('--tiny', action='store_true', help='8x8 images, a tiny model (CPU smoke)')
  p.add_argument('--out', default='runs/image')
  args = p.parse_args(argv)
  if args.tiny:
    args.size, args.d_model, args.d_ff, args.n_layers, args.n_heads = 8, 32, 64, 1, 2
    args.max_seconds, args.n_eval, args.n_complete = 5, 4, 2
  os.makedirs(args.out, exist_ok=True)
  shape = (args.size, args.size, 3)
  length = int(np.prod(shape))
  # Causal LSH, 2 hashes; the tiny run uses 4 chunks and 8 buckets.
  chunk = length // 4 if args.tiny else min(args.chunk_len, length // 2)
  attention = functools.partial(tl.LSHSelfAttention, causal=True, n_hashes=2, chunk_len=chunk,
                                n_buckets=8 if args.tiny else 2 * length // chunk)
  make = lambda mode: ImageReformerLM(shape, args.d_model, args.d_ff, args.n_layers,
                                      args.n_heads, attention_type=attention, mode=mode)
  photos = image_lib.offline_photos()
  train_photos, held_photos = photos[:-args.held_out], photos[-args.held_out:]
  held = crops(held_photos, args.size, args.n_eval, seed=1234)

  model = make('train')
  sig = jax.ShapeDtypeStruct((args.batch, length), jnp.int32)
  weights, state = model.init(sig, rng=jax.random.key(0))
  opt = optimizers.Adam(args.lr)
  opt_state = opt.init(weights)
  step = jax.jit(make_train_step(model, tl.CrossEntropyLoss(), opt,
                                 compute_dtype=jnp.bfloat16), donate_argnums=(0, 2))
  start, i, curve, loss = time.time(), 0, [], float('nan')
  for i in range(1, args.steps + 1):
    tokens = jnp.asarray(image_lib.images_to_tokens(
        crops(train_photos, args.size, args.batch, seed=i), shape))
    batch = (tokens, tokens, jnp.ones(tokens.shape, jnp.float32))
    weights, state, opt_state, loss, _ = step(weights, state, opt_state, batch,
                                              jax.random.key(i))
    if i % 100 == 0:
      curve.append((i, time.time() - start, float(loss) / math.log(2)))
      print(f'step {i} ({curve[-1][1]:.0f} s): train bits/dim {curve[-1][2]:.3f}', flush=True)
    if time.time() - start > args.max_seconds:
      break
  train_seconds = time.time() - start

  eval_model = make('eval')
  eval_batch = math.gcd(args.batch, len(held))  # LSH state is per batch shape: full batches
  _, eval_state = eval_model.init(jax.ShapeDtypeStruct((eval_batch, length), jnp.int32))
  ours = bits_per_dim(eval_model, weights, eval_state, held, eval_batch)
  seen = crops(train_photos, args.size, len(held), seed=4321)  # new crops of training photos
  ours_seen = bits_per_dim(eval_model, weights, eval_state, seen, eval_batch)
  png = png_bits_per_dim(held)

  predict = make('predict')
  originals = held[:args.n_complete]
  top = image_lib.images_to_tokens(originals, shape)[:, :length // 2]
  rows = [originals]
  t0 = time.time()
  for s in range(args.samples):
    ids = decoding.autoregressive_sample(predict, jnp.asarray(top), temperature=1.0,
                                         max_length=length - length // 2, weights=weights,
                                         rng=jax.random.key(100 + s))
    rows.append(image_lib.tokens_to_images(np.concatenate([top, ids], axis=1), shape))
  decode_seconds = time.time() - t0
  grid_path = os.path.join(args.out, 'completions.png')
  save_grid(grid_path, rows)
  result = {'device': jax.devices()[0].device_kind, 'steps': i, 'train_seconds': train_seconds,
            'final_train_loss_bits': float(loss) / math.log(2), 'held_out_bits_per_dim': ours,
            'png_bits_per_dim': png, 'n_eval_images': len(held),
            'train_photos_bits_per_dim': ours_seen, 'png_bits_per_dim_train_photos':
            png_bits_per_dim(seen),
            'decode_seconds': decode_seconds, 'curve': curve, 'args': vars(args)}
  with open(os.path.join(args.out, 'image.json'), 'w') as f:
    json.dump(result, f, indent=1)
  print(f'\n| model | steps ({train_seconds:.0f} s) | held-out bits/dim | PNG bits/dim | '
        'new crops of training photos: bits/dim |')
  print('| --- | --- | --- | --- | --- |')
  print(f'| ImageReformerLM d{args.d_model} x{args.n_layers} | {i} | {ours:.3f} | {png:.3f} | '
        f'{ours_seen:.3f} |')
  print(f'completion grid: {grid_path} ({args.samples} samples of {len(originals)} images in '
        f'{decode_seconds:.0f} s)')


if __name__ == '__main__':
  main()
