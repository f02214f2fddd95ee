"""Optimizers: optax GradientTransformations with Trax-like names and options.

Each factory returns an `optax.GradientTransformation`. `learning_rate` is a
float or a schedule from `plait.supervised.schedules` (a function of the
1-based step number). Every optimizer takes `clip_gradient_norm` (clip by the
global norm of all gradients before the update; None = off).

Weight decay only touches weights with 2 or more dimensions (matrices,
embeddings), never biases or normalization scales.

  >>> tx = AdamW(learning_rate=multifactor(), weight_decay=1e-4, clip_gradient_norm=1.0)
"""
import jax
import optax


def _optax_lr(learning_rate):
  """Our schedules count updates from 1; optax counts from 0."""
  if callable(learning_rate):
    return lambda count: learning_rate(count + 1)
  return learning_rate


def _decay_mask(params):
  return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def _with_clipping(tx, clip_gradient_norm):
  if clip_gradient_norm is None:
    return tx
  if not clip_gradient_norm > 0:
    raise ValueError(f'clip_gradient_norm must be > 0 or None, got {clip_gradient_norm!r}.')
  return optax.chain(optax.clip_by_global_norm(clip_gradient_norm), tx)


def Adam(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, clip_gradient_norm=None):  # pylint: disable=invalid-name
  """Adam (no weight decay; use AdamW for that)."""
  return _with_clipping(optax.adam(_optax_lr(learning_rate), b1=b1, b2=b2, eps=eps),
                        clip_gradient_norm)


def AdamW(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4,  # pylint: disable=invalid-name
          clip_gradient_norm=None):
  """Adam with decoupled weight decay (scaled by the learning rate, as in optax.adamw)."""
  tx = optax.adamw(_optax_lr(learning_rate), b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                   mask=_decay_mask)
  return _with_clipping(tx, clip_gradient_norm)


def Adafactor(learning_rate=1e-2, min_dim_size_to_factor=128, decay_rate=0.8,  # pylint: disable=invalid-name
              multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None,
              weight_decay=None, eps=1e-30, clip_gradient_norm=None):
  """Adafactor: factored second moments, so optimizer memory is ~O(rows + cols) per matrix."""
  tx = optax.adafactor(
      _optax_lr(learning_rate), min_dim_size_to_factor=min_dim_size_to_factor,
      decay_rate=decay_rate, multiply_by_parameter_scale=multiply_by_parameter_scale,
      clipping_threshold=clipping_threshold, momentum=momentum, weight_decay_rate=weight_decay,
      eps=eps, weight_decay_mask=_decay_mask if weight_decay else None)
  return _with_clipping(tx, clip_gradient_norm)


def SGD(learning_rate=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0,  # pylint: disable=invalid-name
        clip_gradient_norm=None):
  """SGD with optional (Nesterov) momentum and L2 weight decay added to the gradient."""
  tx = optax.sgd(_optax_lr(learning_rate), momentum=momentum or None, nesterov=nesterov)
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay, mask=_decay_mask), tx)
  return _with_clipping(tx, clip_gradient_norm)


__all__ = ['Adam', 'AdamW', 'Adafactor', 'SGD']
