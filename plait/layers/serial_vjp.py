"""The vjp of a Serial taken one sublayer at a time, for reversible half-residuals.

`jax.vjp` of a whole Serial(LayerNorm, attention) keeps LayerNorm's float32 residuals
(x - mean, ...) from its forward until its backward, which comes after the attention's
whole backward pass; XLA also starts parts of LayerNorm's backward early, as they need
no cotangent. At 2^20 tokens each such buffer is 2 GiB. Here the earlier sublayers keep
only their inputs (the values between sublayers); after the later sublayers' backward,
each is recomputed and differentiated behind an optimization barrier that includes its
output cotangent, so nothing of it exists before that cotangent does. The last
sublayer is differentiated directly (no recomputation), so the extra cost is one
forward of the earlier, cheap sublayers (a LayerNorm).
"""
import jax
import numpy as np

from plait.layers.combinators import _from_stack, _to_stack

__all__ = ['barrier', 'first_output_vjp', 'zero_cotangent']


def zero_cotangent(x):
  """Cotangent of a value that does not reach the loss: zeros, or float0 for ints/bools."""
  if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact):
    return jax.numpy.zeros_like(x)
  return np.zeros(x.shape, jax.dtypes.float0)


def barrier(tree):
  """optimization_barrier over the leaves that are not float0 (those pass as they are)."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  real = [i for i, v in enumerate(leaves) if v.dtype != jax.dtypes.float0]
  passed = jax.lax.optimization_barrier([leaves[i] for i in real])
  for i, v in zip(real, passed):
    leaves[i] = v
  return jax.tree_util.tree_unflatten(treedef, leaves)


def first_output_vjp(serial, inputs, weights, state, rng, first_ct):
  """(first output, (inputs_ct, weights_ct)) of `serial` for a cotangent of its first output.

  Runs `serial` as its forward does (same per-sublayer rng and state); its other
  outputs get zero cotangents. Gradients equal those of one `jax.vjp` of the whole.
  """
  layers = serial.sublayers
  stack = _to_stack(inputs, serial.n_in)
  saved = []
  def run(i, x, w):
    return serial.call_sublayer(i, _from_stack(x, layers[i].n_in), w, state[i], rng)[0]
  for i, layer in enumerate(layers[:-1]):
    x, rest = stack[:layer.n_in], stack[layer.n_in:]
    saved.append(x)
    stack = _to_stack(run(i, x, weights[i]), layer.n_out) + rest
  last = layers[-1]
  x, rest = stack[:last.n_in], stack[last.n_in:]
  y, last_vjp = jax.vjp(lambda x, w: run(len(layers) - 1, x, w), x, weights[-1])
  outputs = _to_stack(y, last.n_out) + rest
  cts = [first_ct.astype(outputs[0].dtype)] + [zero_cotangent(v) for v in outputs[1:]]
  weights_ct = [None] * len(layers)
  x_ct, weights_ct[-1] = last_vjp(_from_stack(cts[:last.n_out], last.n_out))
  cts = list(x_ct) + cts[last.n_out:]
  for i in reversed(range(len(layers) - 1)):
    layer = layers[i]
    g, g_rest = cts[:layer.n_out], cts[layer.n_out:]
    # The barrier holds the recomputation (and its float32 temporaries) back until the
    # cotangent exists, and keeps XLA from merging it with the forward above (CSE); it
    # takes the later sublayer's weight cotangents so that they are not deferred (see
    # ReversibleSerial.reverse_and_grad).
    x, w, g, weights_ct[i + 1] = barrier((saved[i], weights[i], g, weights_ct[i + 1]))
    _, vjp_fn = jax.vjp(lambda x, w, i=i: run(i, x, w), x, w)
    x_ct, weights_ct[i] = vjp_fn(_from_stack(g, layer.n_out))
    cts = list(x_ct) + g_rest
  return outputs[0], (_from_stack(cts, serial.n_in), tuple(weights_ct))
