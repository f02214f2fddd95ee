"""Exact token compaction (compact_to): the same logits and gradients as the full-length
encoder, a clear error when a sequence has more real tokens than fit, and refusals where
compaction would not be exact."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import layers as tl
from plait import models
from plait.layers.metrics import cross_entropy
from plait.models.compaction import compact_tokens
from plait.supervised import batch_checks
from plait.supervised import weight_paths
from tests.models import helpers

TINY = dict(vocab_size=helpers.VOCAB, n_classes=3, d_model=16, d_ff=32, n_layers=2, n_heads=2,
            max_len=64, dropout=0.0)
ENCODERS = {
    'TransformerEncoder': models.TransformerEncoder,
    'PerformerEncoder': functools.partial(models.PerformerEncoder, nb_features=8),
    # 4 buckets, chunks of 4: the real tokens span several chunks in both lengths (48 and 12).
    'ReformerEncoder': functools.partial(models.ReformerEncoder, n_hashes=2, n_buckets=4,
                                         chunk_len=4),
}


def sparse_tokens(batch, length, most, seed):
  """(batch, length) ids, mostly padding (0): each row has 0..`most` real tokens, scattered;
  row 0 has exactly `most` and row 1 none."""
  rng = np.random.default_rng(seed)
  tokens = np.zeros((batch, length), np.int32)
  for row in range(batch):
    n = most if row == 0 else 0 if row == 1 else int(rng.integers(1, most + 1))
    where = rng.choice(length, size=n, replace=False)
    tokens[row, where] = rng.integers(1, helpers.VOCAB, size=n)
  return tokens


def loss_and_grads(model, weights, state, tokens, targets, rng):
  def loss(w):
    logits, _ = model.pure_fn(tokens, w, state, rng)
    return jnp.mean(cross_entropy(logits, targets)), logits
  return jax.jit(jax.value_and_grad(loss, has_aux=True))(weights)


@pytest.mark.parametrize('name', sorted(ENCODERS))
@pytest.mark.parametrize('pooling', ['mean', 'cls'])
def test_compacted_encoder_equals_the_full_length_one_values_and_gradients(name, pooling):
  """Train mode (features and hash rotations redrawn from the rng), 48 positions with at
  most 11 real tokens, compacted to 12: logits, loss and every weight's gradient agree."""
  tokens = sparse_tokens(4, 48, most=11, seed=0)
  targets = np.array([0, 1, 2, 1], np.int32)
  build = functools.partial(ENCODERS[name], **TINY, pooling=pooling, mode='train')
  full, compact = build(), build(compact_to=12)
  sig = tl.signature(tokens)
  weights = helpers.random_weights(full, sig, seed=1)
  state = helpers.initial_state(full, sig)
  rng = jax.random.key(2)
  (loss_f, logits_f), grads_f = loss_and_grads(full, weights, state, tokens, targets, rng)
  (loss_c, logits_c), grads_c = loss_and_grads(compact, weights, state, tokens, targets, rng)
  np.testing.assert_allclose(logits_c, logits_f, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(loss_c, loss_f, rtol=1e-5)
  for (path, gc), gf in zip(jax.tree_util.tree_leaves_with_path(grads_c),
                            jax.tree_util.tree_leaves(grads_f)):
    np.testing.assert_allclose(gc, gf, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  assert any(np.any(g != 0) for g in jax.tree_util.tree_leaves(grads_c))


def test_compaction_gathers_real_tokens_in_order_and_can_tell_them_apart():
  """The layer itself: kept rows hold the real vectors in their order, the mask marks them;
  a changed real token changes the compacted model's logits (the test above can fail)."""
  x = jnp.arange(2 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 1)
  mask = jnp.array([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]], bool)
  kept, kept_mask = compact_tokens(x, mask, 3)
  np.testing.assert_array_equal(kept[0, :, 0], [1, 3, 4])
  np.testing.assert_array_equal(kept[1, :1, 0], [6])
  np.testing.assert_array_equal(kept_mask, [[1, 1, 1], [1, 0, 0]])
  model = models.TransformerEncoder(**TINY, compact_to=12, mode='eval')
  tokens = sparse_tokens(2, 48, most=11, seed=3)
  weights = helpers.random_weights(model, tl.signature(tokens), seed=4)
  state = helpers.initial_state(model, tl.signature(tokens))
  run = jax.jit(lambda t: model.pure_fn(t, weights, state, None)[0])
  changed = tokens.copy()
  changed[0, np.flatnonzero(tokens[0])[-1]] %= helpers.VOCAB - 1
  changed[0, np.flatnonzero(tokens[0])[-1]] += 1
  assert not np.allclose(run(tokens)[0], run(changed)[0], atol=1e-4)


def test_a_sequence_longer_than_compact_to_gets_nan_logits_never_a_cut_short_answer():
  model = models.TransformerEncoder(**TINY, compact_to=10, mode='eval')
  tokens = sparse_tokens(3, 48, most=11, seed=5)      # row 0: 11 real tokens
  weights = helpers.random_weights(model, tl.signature(tokens), seed=6)
  state = helpers.initial_state(model, tl.signature(tokens))
  run = jax.jit(lambda t: model.pure_fn(t, weights, state, None)[0])
  logits = np.asarray(run(tokens))
  assert np.all(np.isnan(logits[0])) and np.all(np.isfinite(logits[1:]))
  tokens[0, np.flatnonzero(tokens[0])[0]] = 0     # now 10 real tokens fit
  assert np.all(np.isfinite(run(tokens)))


def test_the_host_check_names_the_batch_the_row_and_the_count():
  limit = (0, 3, 'TransformerEncoder')
  fits = [np.array([[0, 1, 2, 3, 0], [0, 0, 0, 0, 0]])]
  batch_checks.check_real_tokens(fits, limit, step=4)
  batch_checks.check_real_tokens(fits, None, step=4)
  too_many = [np.array([[0, 1, 2, 3, 0], [5, 1, 2, 3, 0]])]
  with pytest.raises(batch_checks.DataError,
                     match=r'^Loop: eval batch 2 at step 4 has 1 of 2 sequences with more than 3 '
                           r'tokens other than pad_id=0, e.g. 4 in row \[1\] .* but '
                           r'TransformerEncoder keeps at most 3 \(compact_to\)'):
    batch_checks.check_real_tokens(too_many, limit, 4, 'eval batch 2 at step')


def test_compact_to_at_least_the_length_leaves_the_inputs_as_they_are():
  x, mask = jnp.ones((2, 5, 3)), jnp.array([[1, 0, 1, 0, 0]] * 2, bool)
  out, out_mask = compact_tokens(x, mask, 5)
  assert out is x and out_mask is mask


def test_compaction_keeps_the_weights_tree_and_names_so_checkpoints_carry_over():
  sig = tl.signature(np.zeros((2, 48), np.int32))
  full = models.TransformerEncoder(**TINY, mode='eval')
  compact = models.TransformerEncoder(**TINY, compact_to=12, mode='eval')
  w_full, w_compact = helpers.abstract_init(full, sig)[0], helpers.abstract_init(compact, sig)[0]
  assert (jax.tree_util.tree_structure(w_full) == jax.tree_util.tree_structure(w_compact))
  assert weight_paths.leaf_names(full, w_full) == weight_paths.leaf_names(compact, w_compact)
  assert 'Branch (compact_to=12)' in repr(compact)


def test_a_reformer_checkpoint_restores_at_another_batch_size_and_compact_to(tmp_path):
  """LSH keeps no layer state outside predict mode, so a Reformer trained at one batch size
  and length restores at any other: here from batch 4 at full length into batch 1 compacted."""
  from plait.supervised import checkpoints  # pylint: disable=import-outside-toplevel
  make = lambda **kw: ENCODERS['ReformerEncoder'](**TINY, mode='eval', **kw)
  tokens = sparse_tokens(4, 48, most=10, seed=5)
  full = make()
  weights, state = full.init(tl.signature(tokens), rng=jax.random.key(1))
  saver = checkpoints.Checkpointer(str(tmp_path), async_save=False)
  saver.save(7, full, weights, state, opt_state=(), rng=jax.random.key(0), data_position={})
  saver.close()
  compact = make(compact_to=12)
  restored, _, step = checkpoints.restore_model(str(tmp_path), compact,
                                                jax.ShapeDtypeStruct((1, 48), jnp.int32))
  assert step == 7
  want = full.pure_fn(tokens, weights, state, None)[0][:1]
  got = compact.pure_fn(tokens[:1], restored, compact.state, None)[0]
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('kwargs, message', [
    (dict(compact_to=12, pad_id=None), 'needs pad_id'),
    (dict(compact_to=12, attention_type='chunked'), r"these do not: \['ChunkedSelfAttention'\]"),
    (dict(compact_to=12, attention_type=['dense', 'block_sparse']), 'these do not'),
    (dict(compact_to=0), 'compact_to must be a positive int'),
    (dict(compact_to=True), 'compact_to must be a positive int'),
    (dict(compact_to=12.0), 'compact_to must be a positive int'),
])
def test_compact_to_refuses_what_it_cannot_do_exactly(kwargs, message):
  with pytest.raises(ValueError, match=message):
    models.TransformerEncoder(**{**TINY, **kwargs}, mode='eval')


def test_plait_train_stops_on_a_batch_too_long_to_compact_with_one_message(tmp_path, capsys):
  """The shipped Pathfinder config with compact_to below its images' lit pixels: exit 1 and
  one line naming the step, the count and the setting, before any step runs; no run left."""
  import gin  # pylint: disable=import-outside-toplevel
  from plait.supervised import trainer  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  try:   # main leaves its parsed (locked) config behind: clear it for the tests after
    code = trainer.main([
        '--config_file=lra_pathfinder_transformer_tiny.gin', f'--output_dir={tmp_path}/run',
        '--config=TransformerEncoder.compact_to = 100', '--steps=2'])
  finally:
    gin.clear_config()
  err = capsys.readouterr().err
  assert code == 1
  assert err.startswith('plait-train: Loop: the batch of step 1 has ')
  assert 'but TransformerEncoder keeps at most 100 (compact_to)' in err
  assert err.count('\n') == 1
  assert not (tmp_path / 'run' / 'checkpoints').exists()
