"""Losses and metrics over (logits, targets, weights); weights mask out padding.

All reduce to a scalar weighted mean, so padded positions (weight 0) never count.

  >>> loss = CrossEntropyLoss()
  >>> loss((logits, targets, jnp.ones_like(targets, jnp.float32)))
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.base import Fn


def _weighted_mean(values, weights):
  weights = weights.astype(jnp.float32)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-9)


def cross_entropy(logits, targets, label_smoothing=0.0):
  """Per-position cross-entropy of integer `targets` under `logits` (float32 math).

  Written as logsumexp minus the target's logit, with its own vjp: the gradient
  (softmax - smoothed one-hot) is made in one elementwise pass in the logits' dtype,
  never a float32 log-softmax or a scattered one-hot cotangent of the (..., vocab) size
  (at a 32k vocabulary those are the largest arrays of a language model's step).
  """
  return _cross_entropy(label_smoothing, logits, targets)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _cross_entropy(label_smoothing, logits, targets):
  return _cross_entropy_fwd(label_smoothing, logits, targets)[0]


def _cross_entropy_fwd(label_smoothing, logits, targets):
  x = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  lse = jax.nn.logsumexp(x, axis=-1)
  n_classes = logits.shape[-1]
  picked = jnp.take_along_axis(x, jnp.clip(targets, 0, n_classes - 1)[..., None], axis=-1)
  nll = lse - picked[..., 0]
  if label_smoothing:
    nll = (1.0 - label_smoothing) * nll + label_smoothing * (lse - jnp.mean(x, axis=-1))
  # A target outside [0, n_classes) is NaN, never another class's loss (negative ones too).
  nll = jnp.where((targets >= 0) & (targets < n_classes), nll, jnp.nan)
  return nll, (logits, targets, lse)


def _cross_entropy_bwd(label_smoothing, residuals, g):
  logits, targets, lse = residuals
  x = logits.astype(lse.dtype)
  hit = jnp.arange(logits.shape[-1]) == targets[..., None]
  target = (1.0 - label_smoothing) * hit + label_smoothing / logits.shape[-1]
  grad = (jnp.exp(x - lse[..., None]) - target) * g[..., None]
  return grad.astype(logits.dtype), np.zeros(targets.shape, jax.dtypes.float0)


_cross_entropy.defvjp(_cross_entropy_fwd, _cross_entropy_bwd)


def WeightedCategoryCrossEntropy(label_smoothing=0.0):  # pylint: disable=invalid-name
  """Weighted mean cross-entropy (in nats), optionally with label smoothing."""
  return Fn('WeightedCategoryCrossEntropy',
            lambda logits, targets, weights: _weighted_mean(
                cross_entropy(logits, targets, label_smoothing), weights))


def CrossEntropyLoss():  # pylint: disable=invalid-name
  """Weighted mean cross-entropy of integer targets under logits."""
  return Fn('CrossEntropyLoss',
            lambda logits, targets, weights: _weighted_mean(cross_entropy(logits, targets), weights))


def Accuracy():  # pylint: disable=invalid-name
  """Weighted fraction of positions where argmax(logits) == target."""
  return Fn('Accuracy',
            lambda logits, targets, weights: _weighted_mean(
                (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32), weights))


def SequenceAccuracy():  # pylint: disable=invalid-name
  """Fraction of sequences (axis 0) whose every weighted position is right."""
  def seq_acc(logits, targets, weights):
    wrong = (jnp.argmax(logits, axis=-1) != targets) & (weights > 0)
    per_seq = jnp.all(~wrong.reshape(wrong.shape[0], -1), axis=-1)
    return jnp.mean(per_seq.astype(jnp.float32))
  return Fn('SequenceAccuracy', seq_acc)


def L2Loss():  # pylint: disable=invalid-name
  """Weighted mean squared error."""
  return Fn('L2Loss', lambda y, target, weights: _weighted_mean(jnp.square(y - target), weights))
