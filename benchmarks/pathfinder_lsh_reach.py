"""Which Pathfinder pixels can an LSH layer let meet? The Reformer's first layer at initialization.

  python benchmarks/pathfinder_lsh_reach.py                      # CPU, ~1 min: the config
  python benchmarks/pathfinder_lsh_reach.py --n_hashes 4 --n_buckets 4 --images 200

LSH attention sorts the tokens by bucket and lets each sorted chunk attend to itself and its
`n_chunks_before` / `n_chunks_after` neighbours: two pixels attend to each other only when a
round puts them in such a window. This script builds lra_pathfinder_reformer.gin's encoder
(with any of its LSH settings changed), initializes it, and runs real full images through
the embedding, compaction and the first LayerNorm into the first LSH layer's hashing (the
buckets its forward sorts by, eval mode's fixed rotations, or train mode's drawn ones with
--train_rotations). It prints, averaged over heads and images, how often
  - the two dots meet (any pixel of one in a window with any pixel of the other, in any
    round): what reading their distance needs (worth ~80 %, pathfinder_cues.py);
  - two lit pixels that touch in the image (8-neighbours) meet: what tracing a contour needs;
  - two lit pixels chosen at random meet (the baseline a position-blind sort would give);
and the same for lra_pathfinder_local.gin's windows over raster order (LocalEncoder, which
learns the task: chunks of 64 pixels, each with the one before and the one after) beside it.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from plait.data.lra import pathfinder
from plait.layers.attention.lsh import lsh_buckets
from plait.layers.attention.lsh.chunked import sort_rounds
from pathfinder_dots import dots_image  # pylint: disable=g-bad-import-order
from shipped import shipped_model  # pylint: disable=g-bad-import-order

RESOLUTION = 32
CONFIG = 'lra_pathfinder_reformer'


def scenes_and_images(n, split='validation'):
  """The first n scenes of a split and their (n, 1024) uint8 pixel tokens."""
  examples = pathfinder.PathfinderExamples(split, 0, n, RESOLUTION)
  scenes = [examples.scene(i) for i in range(n)]
  return scenes, np.stack([pathfinder.render(s, RESOLUTION).reshape(-1) for s in scenes])


def dot_pixels(scene, image):
  """Two arrays of raster positions: the lit pixels of each dot (nearest marker wins)."""
  lit = np.flatnonzero((dots_image(scene).reshape(-1) > 0) & (image > 0))
  rows, cols = np.divmod(lit, RESOLUTION)
  centres = scene.markers * RESOLUTION / pathfinder.CANVAS   # (2, 2): x (column), y (row)
  dist = [np.hypot(cols + 0.5 - cx, rows + 0.5 - cy) for cx, cy in centres]
  nearest = np.argmin(np.stack(dist), axis=0)
  return lit[nearest == 0], lit[nearest == 1]


def touching_pairs(image):
  """(n, 2) raster positions of lit pixels that touch (8-neighbours), each pair once."""
  lit = (image.reshape(RESOLUTION, RESOLUTION) > 0)
  pairs, (rows, cols) = [], np.nonzero(lit)
  for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
    r, c, r2, c2 = rows, cols, rows + dr, cols + dc
    ok = (r2 >= 0) & (r2 < RESOLUTION) & (c2 >= 0) & (c2 < RESOLUTION)
    r, c, r2, c2 = r[ok], c[ok], r2[ok], c2[ok]
    keep = lit[r2, c2]
    pairs.append(np.stack([r[keep] * RESOLUTION + c[keep], r2[keep] * RESOLUTION + c2[keep]], 1))
  return np.concatenate(pairs)


def meet(chunk_a, chunk_b, before, after):
  """Bool: some (a, b) pair has one in the other's window (chunk ids, any broadcast shape)."""
  diff = chunk_b - chunk_a
  return ((diff >= -before) & (diff <= after)) | ((-diff >= -before) & (-diff <= after))


def first_attention(model):
  """The first block's LayerNorm and LSH layer: EncoderBlock[Residual[Serial[LN, LSH, ...]]]."""
  return model.sublayers[1].sublayers[0].sublayers[0].sublayers[:2]


def first_layer_buckets(model, weights, state, images, rng):
  """(B, H, R, L_compact) buckets of the first LSH layer and the (B, L_compact) bool mask of
  real (lit) tokens; compacted token k of a row is its k-th lit pixel in raster order."""
  front = model.sublayers[0]
  (x, mask), _ = front.pure_fn(jnp.asarray(images, jnp.int32), weights[0], state[0], rng)
  norm, attention = first_attention(model)
  w = weights[1][0][0]                          # the Serial's (LayerNorm, LSH, Dropout) weights
  normed = norm.pure_fn(x, w[0], (), None)[0]
  buckets = lsh_buckets(attention, normed, w[1], rng=rng, mask=mask)
  return np.asarray(buckets), np.asarray(mask)


def chunks_of(buckets, mask, cfg):
  """(B, H, R, L) buckets -> (B, H, R, L) chunk of each position, as the layer sorts them
  (`sort_rounds` replaying the buckets); mask (B, L) bool marks the real tokens."""
  def one(b, valid):   # b (R, L) of one (row, head); sort_rounds reads only q's length
    return sort_rounds(jnp.zeros((b.shape[-1], 1)), valid, None, cfg, buckets=b)['chunk_of']
  per_row = jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(0, 0))
  return np.asarray(per_row(jnp.asarray(buckets), jnp.asarray(mask)))[..., :buckets.shape[-1]]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
  p.add_argument('--images', type=int, default=100)
  p.add_argument('--n_hashes', type=int)
  p.add_argument('--n_buckets', type=int)
  p.add_argument('--chunk_len', type=int)
  p.add_argument('--n_chunks_after', type=int)
  p.add_argument('--train_rotations', action='store_true',
                 help='hash with train mode\'s rotations drawn from a key (each step draws new)')
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  settings = {k: v for k, v in vars(args).items()
              if k in ('n_hashes', 'n_buckets', 'chunk_len', 'n_chunks_after') and v is not None}
  model = shipped_model(CONFIG, 'train' if args.train_rotations else 'eval', dropout=0.0,
                        **settings)
  scenes, images = scenes_and_images(args.images)
  weights, state = model.init(jax.ShapeDtypeStruct(images.shape, jnp.int32),
                              jax.random.key(args.seed))
  buckets, mask = first_layer_buckets(model, weights, state, images, jax.random.key(args.seed))
  cfg = first_attention(model)[1].kind.config
  local = first_attention(shipped_model('lra_pathfinder_local', 'eval'))[1].kind
  local_window = (local.n_chunks_before, local.n_chunks_after)
  chunk = chunks_of(buckets, mask, cfg)                # (B, H, R, L)
  window = (cfg.n_chunks_before, cfg.n_chunks_after)
  rng = np.random.default_rng(args.seed)
  dots, touching, random_pairs, local_touch, local_dots, local_random = [], [], [], [], [], []
  for i, (scene, image) in enumerate(zip(scenes, images)):
    lit = np.flatnonzero(image > 0)
    index = np.full(image.size, -1)
    index[lit] = np.arange(lit.size)             # raster position -> compacted position
    a, b = (index[d] for d in dot_pixels(scene, image))
    c = chunk[i]                                  # (H, R, L)
    ca, cb = c[..., a][..., :, None], c[..., b][..., None, :]
    dots.append(meet(ca, cb, *window).any(axis=(-1, -2, -3)).mean())   # any round, any pair
    pairs = index[touching_pairs(image)]
    touching.append(meet(c[..., pairs[:, 0]], c[..., pairs[:, 1]], *window).any(1).mean())
    first = rng.integers(0, lit.size, 256)   # 256 pairs of two different lit pixels
    r = np.stack([first, (first + rng.integers(1, lit.size, 256)) % lit.size], 1)
    random_pairs.append(meet(c[..., r[:, 0]], c[..., r[:, 1]], *window).any(1).mean())
    raster = lambda pos: pos // local.chunk_len   # Local's chunks of raster positions
    local_dots.append(float(meet(raster(lit[a])[:, None], raster(lit[b])[None, :],
                                 *local_window).any()))
    local_touch.append(meet(*(raster(p) for p in touching_pairs(image).T), *local_window).mean())
    local_random.append(meet(raster(lit[r[:, 0]]), raster(lit[r[:, 1]]), *local_window).mean())
  n_lit = mask.sum(1)
  print(f'{CONFIG} first LSH layer at init ({"train" if args.train_rotations else "eval"} '
        f'rotations): n_hashes {cfg.n_hashes}, n_buckets {cfg.n_buckets}, chunk_len '
        f'{cfg.chunk_len}, window chunks -{window[0]}..+{window[1]}; {args.images} validation '
        f'images, {n_lit.mean():.0f} lit pixels on average (max {n_lit.max()})')
  used = np.mean([np.unique(buckets[i, h, r][mask[i]]).size for i in range(len(images))
                  for h in range(buckets.shape[1]) for r in range(buckets.shape[2])])
  print(f'buckets in use per round (of {cfg.n_buckets}): {used:.1f} on average')
  print(f'| pairs that meet (any round) | LSH | Local (raster chunks of {local.chunk_len}, '
        f'-{local_window[0]}..+{local_window[1]}) |')
  print('| --- | --- | --- |')
  for name, by_lsh, by_local in (('the two dots', dots, local_dots),
                                 ('touching lit pixels', touching, local_touch),
                                 ('random lit pixels', random_pairs, local_random)):
    print(f'| {name} | {100 * np.mean(by_lsh):.1f} % | {100 * np.mean(by_local):.1f} % |')


if __name__ == '__main__':
  main()
