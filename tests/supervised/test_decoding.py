"""Decoding: fast (predict-mode caches) == slow (re-run the prefix) for every LM; sampling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import models
from plait.supervised import decoding
from tests.models import helpers

PROMPT_LEN, N_NEW = 5, 10


@pytest.mark.parametrize('name', sorted(helpers.LMS))
def test_fast_decoding_equals_rerun_decoding_greedy(name):
  fn, kwargs, slow_mode, pad_multiple = helpers.LMS[name]
  weights = helpers.random_weights(fn(**kwargs, mode='train'), helpers.token_signature(2, 16))
  vocab = 256 if name.startswith('Image') else helpers.VOCAB
  prompt = helpers.random_tokens((2, PROMPT_LEN), seed=1, high=vocab)
  fast = decoding.autoregressive_sample(fn(**kwargs, mode='predict'), prompt, temperature=0.0,
                                        max_length=N_NEW, weights=weights)
  slow = decoding.rerun_sample(fn(**kwargs, mode=slow_mode), prompt, temperature=0.0,
                               max_length=N_NEW, weights=weights, pad_multiple=pad_multiple)
  assert fast.shape == (2, N_NEW)
  np.testing.assert_array_equal(fast, slow)


@pytest.fixture(scope='module')
def tiny_lm():
  """(predict model, eval model, weights) of a tiny TransformerLM."""
  fn, kwargs, _, _ = helpers.LMS['TransformerLM']
  weights = helpers.random_weights(fn(**kwargs, mode='train'), helpers.token_signature(2, 16),
                                   scale=0.5)
  return fn(**kwargs, mode='predict'), fn(**kwargs, mode='eval'), weights


def test_sampling_equals_rerun_at_temperature_one(tiny_lm):
  predict, eval_model, weights = tiny_lm
  prompt = helpers.random_tokens((2, 3), seed=2)
  kw = dict(temperature=1.0, top_k=8, max_length=N_NEW, weights=weights, rng=jax.random.key(3))
  np.testing.assert_array_equal(decoding.autoregressive_sample(predict, prompt, **kw),
                                decoding.rerun_sample(eval_model, prompt, pad_multiple=32, **kw))


def test_same_rng_same_samples_and_other_rng_differs(tiny_lm):
  predict, _, weights = tiny_lm
  kw = dict(batch_size=3, temperature=1.0, max_length=N_NEW, weights=weights)
  a = decoding.autoregressive_sample(predict, rng=jax.random.key(0), **kw)
  b = decoding.autoregressive_sample(predict, rng=jax.random.key(0), **kw)
  c = decoding.autoregressive_sample(predict, rng=jax.random.key(1), **kw)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_top_k_one_is_greedy(tiny_lm):
  predict, _, weights = tiny_lm
  prompt = helpers.random_tokens((2, 4), seed=4)
  greedy = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=N_NEW,
                                          weights=weights)
  top1 = decoding.autoregressive_sample(predict, prompt, temperature=0.7, top_k=1,
                                        max_length=N_NEW, weights=weights, rng=jax.random.key(5))
  np.testing.assert_array_equal(greedy, top1)


def test_sample_logits_top_k_and_top_p_keep_only_the_likely_tokens():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]] * 400))
  keys = jax.random.split(jax.random.key(0), 1)[0]
  top_k = decoding.sample_logits(logits, keys, temperature=1.0, top_k=2)
  assert set(np.unique(top_k)) == {0, 1}
  top_p = decoding.sample_logits(logits, keys, temperature=1.0, top_p=0.7)  # 0.5 + 0.3 >= 0.7
  assert set(np.unique(top_p)) == {0, 1}
  everything = decoding.sample_logits(logits, keys, temperature=1.0)
  assert set(np.unique(everything)) == {0, 1, 2, 3}
  below_3 = decoding.sample_logits(logits[:, ::-1], keys, temperature=1.0, vocab_size=3)
  assert set(np.unique(below_3)) == {0, 1, 2}
  greedy = decoding.sample_logits(logits[:, ::-1], keys, temperature=0.0, vocab_size=3)
  assert set(np.unique(greedy)) == {2}


def test_eos_stops_each_sequence(tiny_lm):
  predict, _, weights = tiny_lm
  prompt = helpers.random_tokens((2, 3), seed=6)
  free = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=N_NEW,
                                        weights=weights)
  eos = int(free[0, 2])
  out = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=N_NEW,
                                       weights=weights, eos_id=eos)
  first = int(np.argmax(free[0] == eos))
  np.testing.assert_array_equal(out[0, :first + 1], free[0, :first + 1])
  assert (out[0, first:] == eos).all()
  for row in range(2):  # Before its first eos a row is unchanged.
    hits = np.flatnonzero(free[row] == eos)
    end = hits[0] if hits.size else out.shape[1]
    np.testing.assert_array_equal(out[row, :end], free[row, :end])


def test_stream_yields_one_token_per_sequence(tiny_lm):
  predict, _, weights = tiny_lm
  stream = decoding.autoregressive_sample_stream(predict, batch_size=2, temperature=0.0,
                                                 weights=weights)
  first = next(stream)
  assert first.shape == (2,) and first.dtype == jnp.int32


def test_decoding_past_max_len_is_a_clear_error(tiny_lm):
  predict, _, weights = tiny_lm
  prompt = helpers.random_tokens((1, 60), seed=7)
  with pytest.raises(ValueError, match='max_len=64'):
    decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=10,
                                   weights=weights)


def test_fast_decoding_needs_a_predict_mode_model(tiny_lm):
  _, eval_model, weights = tiny_lm
  with pytest.raises(ValueError, match="mode='predict'"):
    decoding.autoregressive_sample(eval_model, batch_size=1, temperature=0.0, weights=weights)


def test_sampling_without_rng_is_an_error(tiny_lm):
  predict, _, weights = tiny_lm
  with pytest.raises(ValueError, match='explicit rng'):
    decoding.autoregressive_sample(predict, temperature=1.0, weights=weights)


def test_missing_weights_is_a_clear_error():
  model = models.TransformerLM(vocab_size=8, d_model=16, d_ff=16, n_layers=1, n_heads=2,
                               max_len=16, mode='predict')
  with pytest.raises(ValueError, match='no weights given'):
    decoding.autoregressive_sample(model, temperature=0.0)


@pytest.mark.parametrize('name', ['TransformerLM', 'ReformerLM', 'PerformerLM'])
def test_on_device_loop_equals_python_loop_and_rerun_when_sampling(name):
  fn, kwargs, slow_mode, pad_multiple = helpers.LMS[name]
  weights = helpers.random_weights(fn(**kwargs, mode='train'), helpers.token_signature(2, 16),
                                   seed=3, scale=0.5)
  predict = fn(**kwargs, mode='predict')
  prompt = helpers.random_tokens((3, 4), seed=8)
  kw = dict(temperature=0.9, top_p=0.95, max_length=N_NEW, weights=weights,
            rng=jax.random.key(11))
  on_device = decoding.autoregressive_sample(predict, prompt, on_device=True, **kw)
  python = decoding.autoregressive_sample(predict, prompt, on_device=False, **kw)
  rerun = decoding.rerun_sample(fn(**kwargs, mode=slow_mode), prompt,
                                pad_multiple=pad_multiple, **kw)
  assert on_device.shape == (3, N_NEW) and on_device.dtype == np.int32
  assert len(np.unique(on_device)) > 3  # Really sampled, not a constant.
  np.testing.assert_array_equal(on_device, python)
  np.testing.assert_array_equal(on_device, rerun)
  # With an eos that some row emits: same early stop and the same padding with eos.
  eos = int(on_device[1, 3])
  on_device_eos = decoding.autoregressive_sample(predict, prompt, eos_id=eos, on_device=True,
                                                 **kw)
  python_eos = decoding.autoregressive_sample(predict, prompt, eos_id=eos, on_device=False,
                                              **kw)
  assert (on_device_eos[1, 3:] == eos).all()
  np.testing.assert_array_equal(on_device_eos, python_eos)


def test_on_device_loop_stops_when_every_sequence_hit_eos(tiny_lm):
  predict, _, weights = tiny_lm
  prompt = helpers.random_tokens((1, 4), seed=9)
  free = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=N_NEW,
                                        weights=weights)
  eos = int(free[0, 2])
  first = int(np.argmax(free[0] == eos))
  for on_device in (True, False):
    out = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=N_NEW,
                                         weights=weights, eos_id=eos, on_device=on_device)
    np.testing.assert_array_equal(out, free[:, :first + 1])


def test_on_device_loop_may_stop_at_eos_before_the_caches_are_full(tiny_lm):
  predict, _, weights = tiny_lm
  prompt = helpers.random_tokens((1, 59), seed=10)   # 60 fed: room for 5 new tokens
  free = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=5,
                                        weights=weights)
  assert free.shape == (1, 5)
  with pytest.raises(ValueError, match='max_len=64'):
    decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=6,
                                   weights=weights)
  eos = int(free[0, 4])
  first = int(np.argmax(free[0] == eos))
  for on_device in (True, False):
    out = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=20,
                                         weights=weights, eos_id=eos, on_device=on_device)
    np.testing.assert_array_equal(out, free[:, :first + 1])
  no_stop = int(np.setdiff1d(np.arange(helpers.VOCAB), free[0])[0])
  for on_device in (True, False):
    with pytest.raises(ValueError, match='position 65 exceeds'):
      decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=20,
                                     weights=weights, eos_id=no_stop, on_device=on_device)


@pytest.mark.parametrize('kwargs, message', [
    (dict(temperature=float('nan')), 'temperature must be a finite number'),
    (dict(temperature=float('inf')), 'temperature must be a finite number'),
    (dict(max_length=-3), 'max_length must be a whole number >= 0'),
])
def test_out_of_range_sampling_arguments_are_sampling_argument_errors(tiny_lm, kwargs, message):
  predict, _, weights = tiny_lm
  with pytest.raises(decoding.SamplingArgumentError, match=message):
    decoding.autoregressive_sample(predict, rng=jax.random.key(0), weights=weights, **kwargs)


def test_max_length_zero_gives_an_empty_row_per_sequence(tiny_lm):
  predict, _, weights = tiny_lm
  out = decoding.autoregressive_sample(predict, batch_size=3, temperature=0.0, max_length=0,
                                       weights=weights)
  assert out.shape == (3, 0)
