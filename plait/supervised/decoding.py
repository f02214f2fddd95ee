"""Autoregressive decoding with predict-mode caches, and a slow re-run reference.

A predict-mode model (built with mode='predict') keeps its caches in state: KV caches,
LSH caches, FAVOR running sums, positional counters. Fast decoding feeds the start token
and the whole prompt in ONE call, then one token per call, through a jitted step
`(weights, state, tokens, rng) -> (next_tokens, state)`:

  >>> model = TransformerLM(vocab_size=256, mode='predict')
  >>> weights = train_weights            # the same tree in every mode
  >>> out = autoregressive_sample(model, inputs=prompt, weights=weights, temperature=0.0,
  ...                             max_length=100, eos_id=1)        # (batch, 100) int32

Token layout: the model was trained on ShiftRight(tokens), i.e. it saw `start_id` (0,
ShiftRight's pad) before the first token. So decoding feeds [start_id, *prompt] and
output i continues the prompt. Pass start_id=None to feed the prompt as is.

`rerun_sample` is the slow reference: it re-runs the model on the whole prefix for every
token (an eval-mode model, or a predict-mode one from a fresh cache each time), padding
the prefix to a multiple of `pad_multiple` so only a few lengths are compiled; padding
after the last real token cannot change a causal model's output there. Both use the same
per-step rng, so at any temperature they must agree token for token.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from plait import shapes
from plait.layers.base import walk_layers


# ----- sampling -----
def sample_logits(logits, rng, temperature=1.0, top_k=None, top_p=None, vocab_size=None):
  """Samples ids (B,) from logits (B, V); temperature 0 is greedy (argmax).

  top_k keeps the k largest logits; top_p keeps the smallest set of most likely tokens
  whose probability reaches top_p (nucleus sampling); both may be combined. vocab_size
  (<= V) keeps only ids below it, e.g. a tokenizer smaller than the model's output layer.
  """
  logits = logits.astype(jnp.float32)
  if vocab_size is not None and vocab_size < logits.shape[-1]:
    logits = jnp.where(jnp.arange(logits.shape[-1]) < vocab_size, logits, -jnp.inf)
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  if top_k is not None:
    kth = jnp.sort(logits, axis=-1)[..., -top_k][..., None]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p is not None:
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits / temperature, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs       # mass of strictly more likely tokens
    keep_sorted = before < top_p                       # the top token is always kept
    threshold = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return jax.random.categorical(rng, logits / temperature, axis=-1).astype(jnp.int32)


class SamplingArgumentError(ValueError):
  """A sampling argument (temperature, top_k, top_p, max_length) out of its range."""


def _check_sampling(temperature, top_k, top_p, rng, max_length=None):
  if not (math.isfinite(temperature) and temperature >= 0):
    raise SamplingArgumentError(
        f'temperature must be a finite number >= 0 (0 = greedy), got {temperature}.')
  if top_k is not None and top_k < 1:
    raise SamplingArgumentError(f'top_k must be >= 1 or None, got {top_k}.')
  if top_p is not None and not 0.0 < top_p <= 1.0:
    raise SamplingArgumentError(f'top_p must be in (0, 1] or None, got {top_p}.')
  if max_length is not None and (isinstance(max_length, bool) or
                                 not isinstance(max_length, (int, np.integer)) or max_length < 0):
    raise SamplingArgumentError(f'max_length must be a whole number >= 0, got {max_length!r}.')
  if temperature > 0 and rng is None:
    raise ValueError(f'sampling at temperature={temperature} needs an explicit rng, e.g. '
                     'rng=jax.random.key(0); temperature=0.0 decodes greedily without one.')


def _step_rng(rng, i):
  return jax.random.fold_in(rng, i) if rng is not None else jax.random.key(0)


# ----- model helpers -----
def predict_capacity(model):
  """How many positions the model's predict caches hold (min attention `max_len`), or None."""
  lens = [l.max_len for l in walk_layers(model) if isinstance(getattr(l, 'max_len', None), int)]
  return min(lens) if lens else None


def _is_predict(model):
  return 'predict' in {getattr(l, 'mode', None) for l in walk_layers(model)}


def _check_predict_mode(model):
  modes = {getattr(l, 'mode', None) for l in walk_layers(model)} - {None}
  if modes and modes != {'predict'}:
    raise ValueError(f'{model.name}: fast decoding needs a model built with mode=\'predict\' '
                     f'(it keeps caches in state); this one has layers in mode {sorted(modes)}. '
                     'Build it again with mode=\'predict\' and the same weights.')


def fresh_state(model, input_signature, rng=None):
  """The model's initial state for inputs like `input_signature` (e.g. empty caches)."""
  rng = jax.random.key(0) if rng is None else rng
  sig = shapes.signature(input_signature)
  return jax.jit(lambda r: model.init(sig, r)[1])(rng)


def _weights_of(model, weights):
  if weights is not None:
    return weights
  try:
    return model.weights
  except ValueError as e:
    raise ValueError(f'{model.name}: no weights given; pass weights=... (e.g. the weights of '
                     'the train-mode model or from a checkpoint) or set model.weights.') from e


def _start_tokens(inputs, batch_size, start_id):
  """(B, n) int32: [start_id, *prompt] per row."""
  if inputs is None:
    if start_id is None:
      raise ValueError('give a prompt (inputs) or a start_id to begin decoding from.')
    return np.full((batch_size, 1), start_id, np.int32)
  inputs = np.asarray(inputs)
  if inputs.ndim != 2 or not np.issubdtype(inputs.dtype, np.integer):
    raise ValueError(f'inputs (the prompt) must be integer ids of shape (batch, length), got '
                     f'{inputs.dtype} {inputs.shape}.')
  if batch_size not in (None, 1, inputs.shape[0]):
    raise ValueError(f'batch_size={batch_size} disagrees with the prompt batch {inputs.shape[0]}.')
  if start_id is not None:
    inputs = np.concatenate([np.full((inputs.shape[0], 1), start_id), inputs], axis=1)
  if inputs.shape[1] == 0:
    raise ValueError('the prompt is empty and start_id is None: nothing to condition on.')
  return inputs.astype(np.int32)


# ----- jitted steps (cached per model and sampling settings, so repeated calls reuse them) -----
@functools.lru_cache(maxsize=64)
def _fast_step(model, temperature, top_k, top_p, vocab_size):
  """jit((weights, state, tokens (B, n), rng) -> (next ids (B,), state))."""
  def step(weights, state, tokens, rng):
    logits, state = model.pure_fn(tokens, weights, state, None)
    return sample_logits(logits[:, -1], rng, temperature, top_k, top_p, vocab_size), state
  return jax.jit(step)


@functools.lru_cache(maxsize=64)
def _rerun_step(model, temperature, top_k, top_p, vocab_size):
  """jit((weights, state, tokens (B, L), last, rng) -> next ids (B,)) from position `last`."""
  def step(weights, state, tokens, last, rng):
    logits, _ = model.pure_fn(tokens, weights, state, None)
    return sample_logits(logits[:, last], rng, temperature, top_k, top_p, vocab_size)
  return jax.jit(step)


# ----- fast decoding -----
def autoregressive_sample_stream(model, inputs=None, batch_size=1, temperature=1.0, top_k=None,
                                 top_p=None, rng=None, weights=None, start_id=0,
                                 vocab_size=None):
  """Yields sampled ids (batch,) one step at a time, using predict-mode caches.

  Args:
    model: a layer built with mode='predict' (ids (B, L) -> logits (B, L, vocab)).
    inputs: optional prompt (batch, prompt_len) of ids, consumed in one call.
    batch_size: number of sequences when there is no prompt.
    temperature, top_k, top_p: see `sample_logits`; temperature 0 is greedy.
    rng: key for sampling (required unless temperature is 0); step i uses fold_in(rng, i).
    weights: the model's weights (default: `model.weights`).
    start_id: id fed before the prompt (ShiftRight's pad in training), or None.
    vocab_size: sample only ids below this (see `sample_logits`).
  Raises ValueError when the model's caches (max_len) are full.
  """
  _check_predict_mode(model)
  _check_sampling(temperature, top_k, top_p, rng)
  weights = _weights_of(model, weights)
  tokens = _start_tokens(inputs, batch_size, start_id)
  state = fresh_state(model, shapes.ShapeDtype((tokens.shape[0], 1), jnp.int32))
  capacity = predict_capacity(model)

  step = _fast_step(model, temperature, top_k, top_p, vocab_size)
  fed = 0
  for i in range(np.iinfo(np.int32).max):
    fed += tokens.shape[1]
    if capacity is not None and fed > capacity:
      raise ValueError(f'{model.name}: decoding position {fed} exceeds the predict caches '
                       f'(max_len={capacity}); build the model with a larger max_len.')
    next_tokens, state = step(weights, state, tokens, _step_rng(rng, i))
    yield next_tokens
    tokens = next_tokens[:, None]


def autoregressive_sample(model, inputs=None, batch_size=1, temperature=1.0, top_k=None,
                          top_p=None, max_length=100, eos_id=None, rng=None, weights=None,
                          start_id=0, on_device=True, vocab_size=None):
  """Returns (batch, n) sampled ids, n <= max_length, with predict-mode caches.

  Once a sequence emits `eos_id` its later entries are `eos_id`; decoding stops early
  when every sequence has. on_device=True (default) runs the prompt call and the whole
  token loop inside one jit (`lax.while_loop`, no host round trip per token);
  on_device=False steps `autoregressive_sample_stream` from Python. Both give the same
  tokens. Other arguments as in `autoregressive_sample_stream`.
  """
  if not on_device:
    _check_sampling(temperature, top_k, top_p, rng, max_length)
    stream = autoregressive_sample_stream(model, inputs, batch_size, temperature, top_k, top_p,
                                          rng, weights, start_id, vocab_size)
    return _collect(stream, max_length, eos_id)
  _check_predict_mode(model)
  _check_sampling(temperature, top_k, top_p, rng, max_length)
  weights = _weights_of(model, weights)
  tokens = _start_tokens(inputs, batch_size, start_id)
  if max_length == 0:
    return np.zeros((tokens.shape[0], 0), np.int32)
  # Step i feeds position tokens.shape[1] + i; the stream path raises once that passes the
  # caches, unless every sequence has stopped at eos before then. Same here.
  n_steps, capacity = max_length, predict_capacity(model)
  if capacity is not None:
    n_steps = min(max_length, capacity - tokens.shape[1] + 1)
  overflow = ValueError(
      f'{model.name}: decoding position {tokens.shape[1] + max(n_steps, 0)} exceeds the '
      f'predict caches (max_len={capacity}); build the model with a larger max_len.')
  if n_steps < max_length and (eos_id is None or n_steps <= 0):
    raise overflow
  generate = _generate(model, temperature, top_k, top_p, n_steps, eos_id, rng is not None,
                       vocab_size)
  key = rng if rng is not None else jax.random.key(0)
  out, count = generate(weights, jnp.asarray(tokens), key)
  count = int(count)
  if n_steps < max_length and count == n_steps and not (np.asarray(out) == eos_id).any(
      axis=1).all():
    raise overflow
  return np.asarray(out[:, :count]).astype(np.int32)


@functools.lru_cache(maxsize=64)
def _generate(model, temperature, top_k, top_p, n_steps, eos_id, fold_rng, vocab_size):
  """jit((weights, prompt (B, n), rng) -> (ids (B, n_steps), steps taken)).

  One jit for the whole decode: a fresh predict state, the prompt call, then a while loop
  of one-token calls writing into a preallocated buffer. Step i samples with
  fold_in(rng, i) (or key(0) without an rng), and sequences that emitted eos_id output
  eos_id, exactly as `_collect` does for the stream; the loop exits once all have.
  """
  def step(weights, state, tokens, rng, i):
    logits, state = model.pure_fn(tokens, weights, state, None)
    step_rng = jax.random.fold_in(rng, i) if fold_rng else jax.random.key(0)
    return sample_logits(logits[:, -1], step_rng, temperature, top_k, top_p,
                         vocab_size), state

  def mask(sampled, done):
    if eos_id is None:
      return sampled, done
    out = jnp.where(done, eos_id, sampled)
    return out, done | (out == eos_id)

  def generate(weights, prompt, rng):
    batch = prompt.shape[0]
    sig = shapes.ShapeDtype((batch, 1), jnp.int32)
    state = model.init(sig, jax.random.key(0))[1]   # as fresh_state
    sampled, state = step(weights, state, prompt, rng, 0)
    out, done = mask(sampled, jnp.zeros((batch,), bool))
    buf = jnp.zeros((batch, n_steps), jnp.int32).at[:, 0].set(out)

    def cond(carry):
      i, _, _, _, done = carry
      return (i < n_steps) & ~jnp.all(done)

    def body(carry):
      i, state, last, buf, done = carry
      sampled, state = step(weights, state, last[:, None], rng, i)
      out, done = mask(sampled, done)
      buf = jax.lax.dynamic_update_slice(buf, out[:, None], (0, i))
      return i + 1, state, sampled, buf, done

    carry = (jnp.int32(1), state, sampled, buf, done)
    i, _, _, buf, _ = jax.lax.while_loop(cond, body, carry)
    return buf, i
  return jax.jit(generate)


def _collect(stream, max_length, eos_id):
  out, done = [], None
  for _, tokens in zip(range(max_length), stream):
    tokens = np.asarray(tokens)
    if eos_id is not None:
      done = np.zeros(tokens.shape, bool) if done is None else done
      tokens = np.where(done, eos_id, tokens)
      done = done | (tokens == eos_id)
    out.append(tokens)
    if done is not None and done.all():
      break
  if not out:
    return np.zeros((0, 0), np.int32)
  return np.stack(out, axis=1).astype(np.int32)


# ----- weights from a training checkpoint -----
def restore_weights(output_dir, model, step=None):
  """(weights, step) from the training checkpoint in `output_dir`.

  `step`: None (the latest), a saved step, or 'best' (the best by the run's keep_best
  metric, see `checkpoints.best_step`). `model` is built as for training or decoding:
  the weights tree is the same in every mode. The layer state is not read: decoding
  starts from fresh predict-mode state. `checkpoints.read_model` does the work (as for
  `checkpoints.restore_model`). Raises CheckpointError (a ValueError) when output_dir
  has no checkpoint, `step` is not saved (listing the saved steps), or the checkpoint
  was written for a different model.
  """
  from plait.supervised import checkpoints  # pylint: disable=g-import-not-at-top
  signature = shapes.ShapeDtype((1, predict_capacity(model) or 64), jnp.int32)
  weights, _, step = checkpoints.read_model(output_dir, model, signature, step,
                                            with_state=False, caller='restore_weights')
  return weights, step


# ----- slow reference -----
def rerun_sample_stream(model, inputs=None, batch_size=1, temperature=1.0, top_k=None,
                        top_p=None, rng=None, weights=None, start_id=0, pad_multiple=64,
                        vocab_size=None):
  """Like `autoregressive_sample_stream`, but re-runs the whole prefix for every token.

  `model` is an eval-mode model, or a predict-mode one (then started from a fresh cache on
  each prefix: the definition LSH's decoding cache follows, see attention/lsh/decode.py). No state
  is carried between steps. An eval-mode model gets the prefix without start_id, since
  its ShiftRight adds it back (so start_id must be the ShiftRight pad id, 0 by default). Prefixes are padded with zeros to a multiple of `pad_multiple`.
  """
  _check_sampling(temperature, top_k, top_p, rng)
  weights = _weights_of(model, weights)
  seq = _start_tokens(inputs, batch_size, start_id)
  capacity, states = predict_capacity(model), {}
  predict = _is_predict(model)
  if not predict and start_id is None:
    raise ValueError(f'{model.name}: re-running an eval-mode model needs start_id (the id its '
                     'ShiftRight pads with, 0 by default): the model shifts its input itself.')

  step = _rerun_step(model, temperature, top_k, top_p, vocab_size)
  for i in range(np.iinfo(np.int32).max):
    n = seq.shape[1]
    padded_len = -(-n // pad_multiple) * pad_multiple
    if capacity is not None and n <= capacity:
      padded_len = min(padded_len, capacity)
    if padded_len not in states:
      states[padded_len] = fresh_state(
          model, shapes.ShapeDtype((seq.shape[0], padded_len), jnp.int32))
    # An eval-mode model shifts its input right itself (ShiftRight pads with start_id).
    fed = seq if predict else seq[:, 1:]
    padded = np.pad(fed, ((0, 0), (0, padded_len - fed.shape[1])))
    next_tokens = step(weights, states[padded_len], padded, n - 1, _step_rng(rng, i))
    yield next_tokens
    seq = np.concatenate([seq, np.asarray(next_tokens)[:, None]], axis=1)


def rerun_sample(model, inputs=None, batch_size=1, temperature=1.0, top_k=None, top_p=None,
                 max_length=100, eos_id=None, rng=None, weights=None, start_id=0,
                 pad_multiple=64, vocab_size=None):
  """Slow reference for `autoregressive_sample`: (batch, n) ids from re-running prefixes."""
  stream = rerun_sample_stream(model, inputs, batch_size, temperature, top_k, top_p, rng,
                               weights, start_id, pad_multiple, vocab_size)
  return _collect(stream, max_length, eos_id)


__all__ = ['autoregressive_sample', 'autoregressive_sample_stream', 'fresh_state',
           'predict_capacity', 'rerun_sample', 'rerun_sample_stream', 'restore_weights',
           'sample_logits']
