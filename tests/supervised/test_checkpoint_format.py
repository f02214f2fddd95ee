"""The checkpoint layout: named orbax trees readable with orbax alone; older formats restore."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import plait.layers as tl
from plait.supervised import checkpoints, decoding, training
from tests.supervised import helpers

SIG = jax.ShapeDtypeStruct((1, helpers.LENGTH), jnp.int32)


def _trained(output_dir, n_steps=2):
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=output_dir,
                       settings=helpers.settings(async_checkpointing=False))
  loop.run(n_steps)
  loop.close()
  return loop


def _assert_trees_equal(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_orbax_alone_reads_the_weights_as_a_tree_named_like_the_model(tmp_path):
  loop = _trained(tmp_path)
  step_dir = tmp_path / 'checkpoints' / '2'
  weights = ocp.PyTreeCheckpointer().restore(str(step_dir / 'weights'))
  assert set(weights) == {'Serial'}
  assert set(weights['Serial']) == {'Embedding_32_16[0]', 'Dense_16[1]', 'Dense_32[3]'}
  assert set(weights['Serial']['Dense_16[1]']) == {'kernel', 'bias'}
  np.testing.assert_array_equal(weights['Serial']['Dense_32[3]']['kernel'],
                                loop.weights[3].kernel)
  opt_state = ocp.StandardCheckpointer().restore(str(step_dir / 'opt_state'))
  np.testing.assert_array_equal(opt_state['0']['mu']['Serial']['Embedding_32_16[0]']['embedding'],
                                loop.opt_state[0].mu[0].embedding)
  assert not (step_dir / 'arrays').exists()


def test_meta_lists_every_leaf_by_name(tmp_path):
  _trained(tmp_path)
  meta = checkpoints.Checkpointer(tmp_path).read_meta(2)
  assert meta['format'] == checkpoints.FORMAT == 3
  assert meta['weights'][1][:3] == ['Serial/Dense_16[1]/kernel', [16, 16], 'float32']


def _restore_into_a_wider_model(directory, saved_as):
  """restore_model into tiny_lm with Dense(24) for Dense(16): the error names the leaf."""
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'Serial/Dense_24\[1\]/kernel: checkpoint \[16, 16\] float32 \(saved '
                           rf'as Serial/Dense_16\[1\]/{saved_as}\), model \[16, 24\] float32'):
    checkpoints.restore_model(str(directory), tl.Serial(
        tl.Embedding(helpers.VOCAB, 16), tl.Dense(24), tl.Relu(), tl.Dense(helpers.VOCAB)), SIG)


def test_restore_model_shape_mismatch_names_the_leaf_path(tmp_path):
  _trained(tmp_path)
  _restore_into_a_wider_model(tmp_path, 'kernel')


def test_restore_weights_and_restore_model_read_the_same_weights(tmp_path):
  loop = _trained(tmp_path)
  weights, _, step = checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG)
  same, same_step = decoding.restore_weights(str(tmp_path), helpers.tiny_lm())
  assert step == same_step == 2
  _assert_trees_equal(weights, loop.weights)
  _assert_trees_equal(same, loop.weights)


# ----- formats 1 and 2 (before named trees) -----
def _old_name(model, key_path):
  """The readable names formats 1 and 2 recorded: `Serial/Dense_16[1]/w0`."""
  node, parts, own = model, [model.name], []
  for key in key_path:
    i = getattr(key, 'idx', getattr(key, 'name', None))
    if node is not None and isinstance(key, jax.tree_util.SequenceKey) and i < len(node.sublayers):
      node = node.sublayers[i]
      parts.append(f'{node.name}[{i}]')
    else:
      node = None
      own.append(str(i if isinstance(i, int) else 0))
  return '/'.join(parts + (['w' + '.'.join(own)] if own else []))


def _write_old_checkpoint(output_dir, step, model, weights, state, opt_state, rng, version):
  """Writes checkpoint `step` as plait wrote formats 1 and 2: one flat `arrays` item
  {'w00000': ..., 's00000': ..., 'o00000': ...} in tree order and a `meta` JSON item
  (format 2 adds manifest.json)."""
  arrays = {}
  meta = {'format': version, 'step': step, 'data': {'batches': step, 'state': {'i': step}},
          'metrics': {}, 'rng': {'impl': str(jax.random.key_impl(rng)),
                                 'data': np.asarray(jax.random.key_data(rng)).tolist()}}
  for kind, prefix, tree in (('weights', 'w', weights), ('state', 's', state),
                             ('opt_state', 'o', opt_state)):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    key = jax.tree_util.keystr  # (their keys had `[3][0]` for `[3].kernel`: restore ignores them)
    meta[kind] = [[_old_name(model, p) if kind != 'opt_state' else key(p),
                   list(np.shape(x)), str(x.dtype), key(p)] for p, x in flat]
    arrays.update({f'{prefix}{i:05d}': x for i, (_, x) in enumerate(flat)})
  manager = ocp.CheckpointManager(os.path.join(output_dir, 'checkpoints'),
                                  options=ocp.CheckpointManagerOptions(create=True))
  manager.save(step, args=ocp.args.Composite(arrays=ocp.args.PyTreeSave(arrays),
                                             meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()
  if version >= 2:
    checkpoints.write_manifest(os.path.join(output_dir, 'checkpoints', str(step)))


@pytest.mark.parametrize('version', [1, 2])
def test_old_flat_checkpoint_restores_into_named_weights(tmp_path, version):
  model = helpers.tiny_lm()
  weights, state = model.init(SIG, jax.random.key(5))
  opt_state = helpers.lm_task().optimizer.init(weights)
  _write_old_checkpoint(str(tmp_path), 3, model, weights, state, opt_state, jax.random.key(1),
                        version)
  assert os.path.isdir(tmp_path / 'checkpoints' / '3' / 'arrays')
  restored, _, step = checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG)
  assert step == 3 and type(restored[1]).__name__ == 'DenseWeights'
  _assert_trees_equal(restored, weights)
  # A Loop resumes from it (optimizer state too) and its next checkpoint is format 3.
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=str(tmp_path),
                       settings=helpers.settings(async_checkpointing=False))
  assert loop.step == 3
  _assert_trees_equal(loop.opt_state, opt_state)
  loop.run(1)
  loop.close()
  assert json.loads((tmp_path / 'checkpoints' / '4' / 'meta' / 'metadata').read_text())[
      'format'] == 3


def test_old_checkpoint_of_another_model_names_the_mismatch_by_position(tmp_path):
  model = helpers.tiny_lm()
  weights, state = model.init(SIG)
  _write_old_checkpoint(str(tmp_path), 1, model, weights, state,
                        helpers.lm_task().optimizer.init(weights), jax.random.key(1), 2)
  _restore_into_a_wider_model(tmp_path, 'w0')


def test_checkpoint_of_a_newer_format_is_refused(tmp_path):
  _trained(tmp_path)
  path = tmp_path / 'checkpoints' / '2' / 'meta' / 'metadata'
  meta = json.loads(path.read_text())
  meta['format'] = checkpoints.FORMAT + 1
  path.write_text(json.dumps(meta))
  checkpoints.write_manifest(str(tmp_path / 'checkpoints' / '2'))
  with pytest.raises(checkpoints.CheckpointError, match='newer than this plait reads'):
    checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG)


def test_old_flat_checkpoint_of_an_attention_model_restores_into_named_attention_weights(
    tmp_path):
  # Attention weights were a plain tuple ((w, b), (w, b), (w, b), (w, b)); they are now
  # AttentionWeights(q, k, v, o). Old checkpoints match by position, so they still restore.
  from plait import models  # pylint: disable=import-outside-toplevel
  make = lambda: models.TransformerLM(vocab_size=helpers.VOCAB, d_model=16, d_ff=32, n_layers=1,
                                      n_heads=2, max_len=32)
  weights, state = make().init(SIG, jax.random.key(5))
  _write_old_checkpoint(str(tmp_path), 2, make(), weights, state, (), jax.random.key(1), 2)
  restored, _, _ = checkpoints.restore_model(str(tmp_path), make(), SIG)
  _assert_trees_equal(restored, weights)
  names = checkpoints.leaf_names(make(), restored)
  assert any(n.endswith('/q/kernel') for n in names) and any(n.endswith('/o/bias') for n in names)
