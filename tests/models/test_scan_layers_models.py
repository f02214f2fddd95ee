"""Every model with scan_layers=True (opt-in) equals its unrolled self (scan_layers=False).

Train (dropout), eval and gradients on random tokens, and predict-mode decoding (caches
carried through the scan): same numbers to float32 rounding, same decoded tokens.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.supervised import decoding
from tests.models import helpers

N_LAYERS = 4   # Two periods of the [dense, chunked] / [chunked, LSH] lists: something to scan.


def _lm(name, mode, scan):
  fn, kwargs, _, _ = helpers.LMS[name]
  kwargs = dict(kwargs, mode=mode, scan_layers=scan)
  if 'n_layers' in kwargs or name.startswith('Image'):
    kwargs['n_layers'] = N_LAYERS
  return fn(**kwargs)


def _close(a, b):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(u, v, rtol=1e-5, atol=2e-5)


def _program_size(fn, *args):
  """Characters of fn's jaxpr: an unrolled stack repeats its layers, a scan has them once."""
  return len(str(jax.make_jaxpr(fn)(*args)))


def _train_eval(models, tokens, weights, rng):
  out = {}
  for scan, model in models.items():
    state = helpers.initial_state(model, helpers.token_signature(*tokens.shape))
    def loss(w, model=model, state=state):
      y, _ = model.pure_fn(tokens, w, state, rng)
      return jnp.sum(y * helpers.random_tokens(y.shape, seed=9)) * 1e-3, y
    (_, y), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(weights)
    out[scan] = (y, g, _program_size(lambda w, loss=loss: loss(w)[0], weights))
  return out


# scan_layers is opt-in: the fast suite checks one plain and one reversible model in train
# mode (dropout: the per-layer rngs) and two decodings (rotary: the scan carries each layer's
# next position); `pytest -m slow` checks the rest.
FAST = {('TransformerLM', 'train'), ('ReformerLM', 'train'), ('TransformerLM', 'predict'),
        ('TransformerLM_rotary', 'predict')}


def _cases(names, modes):
  return [pytest.param(n, m, marks=() if (n, m) in FAST else pytest.mark.slow)
          for n in names for m in modes]


@pytest.mark.parametrize('name, mode', _cases(sorted(helpers.LMS), ['train', 'eval']))
def test_lm_scanned_equals_unrolled(name, mode):
  vocab = 256 if name.startswith('Image') else helpers.VOCAB
  models = {s: _lm(name, mode, s) for s in (False, True)}
  tokens = helpers.random_tokens((2, 16), seed=3, high=vocab)
  weights = helpers.random_weights(models[False], helpers.token_signature(2, 16))
  out = _train_eval(models, tokens, weights, jax.random.key(4) if mode == 'train' else None)
  _close(out[True][0], out[False][0])
  _close(out[True][1], out[False][1])
  assert out[True][2] < 0.8 * out[False][2], 'scan_layers=True must scan the repeated layers'


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(helpers.ENCODERS))
def test_encoder_scanned_equals_unrolled(name):
  fn, kwargs = helpers.ENCODERS[name]
  models = {s: fn(**dict(kwargs, n_layers=N_LAYERS, scan_layers=s)) for s in (False, True)}
  tokens = helpers.random_tokens((2, 32), seed=3)
  tokens[:, -3:] = 0   # Padding: the mask travels through the scan.
  weights = helpers.random_weights(models[False], helpers.token_signature(2, 32))
  out = _train_eval(models, tokens, weights, jax.random.key(4))
  _close(out[True][0], out[False][0])
  _close(out[True][1], out[False][1])
  assert out[True][2] < 0.8 * out[False][2]


@pytest.mark.parametrize('name, mode', _cases(sorted(helpers.LMS), ['predict']))
def test_predict_mode_decoding_scanned_equals_unrolled(name, mode):
  vocab = 256 if name.startswith('Image') else helpers.VOCAB
  weights = helpers.random_weights(_lm(name, 'train', False), helpers.token_signature(2, 16))
  prompt = helpers.random_tokens((2, 5), seed=1, high=vocab)
  logits, tokens = {}, {}
  for scan in (False, True):
    model = _lm(name, 'predict', scan)
    state = decoding.fresh_state(model, helpers.token_signature(2, 1))
    steps = []
    for t in range(prompt.shape[1]):   # Token by token, the caches in the state.
      y, state = model.pure_fn(prompt[:, t:t + 1], weights, state)
      steps.append(y)
    logits[scan] = steps
    tokens[scan] = decoding.autoregressive_sample(model, prompt, temperature=0.0, max_length=6,
                                                  weights=weights)
  _close(logits[True], logits[False])
  np.testing.assert_array_equal(tokens[True], tokens[False])
