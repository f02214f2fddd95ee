"""Predict-mode LSH: predict(x)[t] == eval(x[:t + 1])[t] (see lsh/decode.py)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention.lsh import LSHKind, LSHSelfAttention
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.layers.attention.lsh_oracle import shared_qk_oracle, vary_row_norms

L, DH = 14, 8
KIND = LSHKind(n_hashes=3, n_buckets=4, chunk_len=4, n_chunks_before=1, causal=True)


# The same with the queries themselves as keys (LRA's Reformer).
RAW_KIND = LSHKind(n_hashes=3, n_buckets=4, chunk_len=4, n_chunks_before=1, causal=True,
                   normalize_keys=False)


@functools.partial(jax.jit, static_argnames=('mode', 'kind'))
def attend(q, v, valid, state, mode, kind=KIND):
  return kind.attend(q, None, v, valid, state, None, mode)


def decode(q, v, prompt_len, kind=KIND):
  """The prompt in one call, then one token per call; returns all outputs (L, DH)."""
  cache = kind.init_state(1, 1, L, DH, jnp.float32, 'predict')
  out, cache = attend(q[:prompt_len], v[:prompt_len], None, cache, 'predict', kind)
  outs = [out]
  for t in range(prompt_len, L):
    out, cache = attend(q[t:t + 1], v[t:t + 1], None, cache, 'predict', kind)
    outs.append(out)
  return np.concatenate(outs)


def check_predict_equals_eval(q, v, kind=KIND):
  """predict(x)[t] == eval(x[:t + 1])[t] for every t; returns the predict outputs."""
  got = decode(jnp.asarray(q), jnp.asarray(v), prompt_len=5, kind=kind)
  state = kind.init_state(1, 1, L, DH, jnp.float32, 'eval')   # () outside predict mode
  for t in range(L):
    # eval(x[:t + 1]) == eval on all of x with positions > t masked: masked tokens sort
    # after every real one, exactly like the automatic padding of a shorter input.
    valid = jnp.arange(L) <= t
    want, _ = attend(jnp.asarray(q), jnp.asarray(v), valid, state, 'eval', kind)
    np.testing.assert_allclose(got[t], want[t], atol=2e-5, rtol=1e-5, err_msg=f't={t}')
  # The masked-suffix shortcut itself, checked once against a truly shorter input.
  short, _ = attend(jnp.asarray(q[:9]), jnp.asarray(v[:9]), None, state, 'eval', kind)
  np.testing.assert_allclose(got[8], short[8], atol=2e-5, rtol=1e-5)
  return got


def test_predict_equals_eval_on_every_prefix():
  check_predict_equals_eval(random_array((L, DH), 0), random_array((L, DH), 1))


def test_raw_keys_predict_equals_eval_on_every_prefix():
  """normalize_keys=False: the cache holds the queries themselves as keys. On queries of
  varied norms the unit-key decoder's outputs are far off, so ignoring the option fails."""
  q, v = vary_row_norms(random_array((L, DH), 7), seed=8), random_array((L, DH), 9)
  got = check_predict_equals_eval(q, v, RAW_KIND)
  unit = decode(jnp.asarray(q), jnp.asarray(v), prompt_len=5)
  assert np.abs(unit - got).max() > 0.05


def test_predict_is_split_invariant():
  q, v = jnp.asarray(random_array((L, DH), 2)), jnp.asarray(random_array((L, DH), 3))
  np.testing.assert_allclose(decode(q, v, prompt_len=1), decode(q, v, prompt_len=5),
                             atol=1e-5, rtol=1e-5)


def test_predict_within_one_chunk_equals_dense_causal_shared_qk_layer():
  """With max_len <= chunk_len everything is one chunk: exact causal shared-QK attention."""
  d_model, n_heads, max_len = 16, 2, 8
  layer = LSHSelfAttention(d_model, n_heads=n_heads, n_hashes=2, n_buckets=4, chunk_len=8,
                           causal=True, max_len=max_len, mode='predict')
  weights, state = layer.init(ShapeDtype((1, 1, d_model)), rng=jax.random.key(0))
  f = jax.jit(layer.pure_fn)
  x = random_array((1, max_len, d_model), 4)
  y_prompt, state = f(x[:, :3], weights, state, None)
  ys = [y_prompt]
  for t in range(3, max_len):
    y, state = f(x[:, t:t + 1], weights, state, None)
    ys.append(y)
  got = np.concatenate(ys, axis=1)
  (wq, bq), _, (wv, bv), (wo, bo) = weights
  split = lambda t: t.reshape(max_len, n_heads, -1).transpose(1, 0, 2)
  q, v = split(x[0] @ np.asarray(wq) + bq), split(x[0] @ np.asarray(wv) + bv)
  heads = np.stack([shared_qk_oracle(q[h], v[h], causal=True)[0] for h in range(n_heads)])
  want = heads.transpose(1, 0, 2).reshape(max_len, -1) @ np.asarray(wo) + np.asarray(bo)
  np.testing.assert_allclose(got[0], want, atol=5e-5, rtol=1e-4)


def test_predict_needs_causal():
  layer = LSHSelfAttention(16, n_heads=2, causal=False, max_len=8, mode='predict')
  with pytest.raises(Exception, match='causal=True'):  # raised already by init
    layer.init(ShapeDtype((1, 1, 16)), rng=jax.random.key(0))


def test_decoding_past_max_len_gives_nan():
  q, v = jnp.asarray(random_array((L + 1, DH), 5)), jnp.asarray(random_array((L + 1, DH), 6))
  cache = KIND.init_state(1, 1, L, DH, jnp.float32, 'predict')
  _, cache = attend(q[:L], v[:L], None, cache, 'predict')
  out, _ = attend(q[L:], v[L:], None, cache, 'predict')
  assert np.all(np.isnan(out))
