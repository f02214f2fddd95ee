"""Losses and metrics over (logits, targets, weights); weights mask out padding.

All reduce to a scalar weighted mean, so padded positions (weight 0) never count.

  >>> loss = CrossEntropyLoss()
  >>> loss((logits, targets, jnp.ones_like(targets, jnp.float32)))
"""
import jax
import jax.numpy as jnp

from plait.layers.base import Fn


def _weighted_mean(values, weights):
  weights = weights.astype(jnp.float32)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-9)


def cross_entropy(logits, targets, label_smoothing=0.0):
  """Per-position cross-entropy of integer `targets` under `logits` (float32 math)."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
  return nll


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
