"""benchmarks/pathfinder_lsh_reach.py: which pixels the first LSH layer lets meet."""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.lsh.config import LSHConfig
from tests.benchmarks.scripts import load_script, run_script

reach = load_script('pathfinder_lsh_reach.py')


def test_meet_is_either_direction_of_the_window():
  # Window -1..+0: chunk 3 sees 2 and 3; 2 sees 1 and 2; so 2 and 3 meet, 1 and 3 do not.
  assert reach.meet(np.int32(3), np.int32(2), 1, 0) and reach.meet(np.int32(2), np.int32(3), 1, 0)
  assert not reach.meet(np.int32(1), np.int32(3), 1, 0)
  assert reach.meet(np.int32(1), np.int32(3), 0, 2)


def test_chunks_follow_the_stable_sort_by_bucket():
  buckets = np.array([[[[2, 0, 1, 0, 2, 1]]]])           # (B, H, R, L) = (1, 1, 1, 6)
  cfg = LSHConfig(n_hashes=1, factors=(4,), chunk_len=2, n_chunks_before=1, n_chunks_after=0,
                  causal=False)
  # sorted: positions 1, 3 (bucket 0), 2, 5 (bucket 1), 0, 4 (bucket 2); chunks of 2.
  chunks = reach.chunks_of(buckets, np.ones((1, 6), bool), cfg)
  np.testing.assert_array_equal(chunks, [[[[2, 0, 1, 0, 2, 1]]]])


def test_dot_pixels_split_the_dots_by_their_markers():
  scenes, images = reach.scenes_and_images(6)
  for scene, image in zip(scenes, images):
    a, b = reach.dot_pixels(scene, image)
    assert a.size and b.size and not set(a) & set(b)
    for pixels, (x, y) in zip((a, b), scene.markers):
      rows, cols = np.divmod(pixels, 32)
      assert np.all(np.hypot(cols + 0.5 - x, rows + 0.5 - y) < 2.5)


def test_hashed_input_is_the_first_lsh_layers_own():
  """The LayerNorm output hashed is what the model's first attention layer receives: the first
  residual block's output minus its input is that layer's output on it (eval: no dropout)."""
  model = reach.shipped_model(reach.CONFIG, 'eval', dropout=0.0)
  _, images = reach.scenes_and_images(3)
  weights, state = model.init(jax.ShapeDtypeStruct(images.shape, jnp.int32), jax.random.key(1))
  (x, mask), _ = model.sublayers[0].pure_fn(jnp.asarray(images, jnp.int32), weights[0],
                                            state[0], None)
  residual = model.sublayers[1].sublayers[0]
  (after, _), _ = residual.pure_fn((x, mask), weights[1][0], state[1][0], None)
  norm, attention = reach.first_attention(model)
  w = weights[1][0][0]
  normed = norm.pure_fn(x, w[0], (), None)[0]
  (attended, _), _ = attention.pure_fn((normed, mask), w[1], state[1][0][0][1], None)
  np.testing.assert_allclose(after - x, attended, atol=1e-5)
  buckets, kept = reach.first_layer_buckets(model, weights, state, images, None)
  np.testing.assert_array_equal(kept.sum(1), (images > 0).sum(1))
  padding = ~kept[:, None, None, :]                  # sorts after every real bucket (16)
  assert buckets.shape[-1] == kept.shape[1] and np.all((buckets == 16) == padding)


def test_one_bucket_one_window_lets_every_pair_meet():
  out = run_script('pathfinder_lsh_reach.py', '--images', '4', '--n_buckets', '1',
                   '--n_hashes', '1', '--chunk_len', '256')
  rows = [l for l in out.stdout.splitlines() if l.startswith('| the') or l.startswith('| touch')
          or l.startswith('| random')]
  assert len(rows) == 3 and all(r.split('|')[2].strip() == '100.0 %' for r in rows), out.stdout
