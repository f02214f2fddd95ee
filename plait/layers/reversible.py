"""Reversible layers: residual stacks whose backward pass recomputes activations.

A `ReversibleLayer` can compute its inputs from its outputs (`reverse`). A
`ReversibleSerial` of such layers runs under `jax.custom_vjp`: its forward saves only
the final outputs (plus weights, states and rng), and its backward walks the layers in
reverse, rebuilding each layer's inputs from its outputs and recomputing that layer's
vjp there. Activation memory is then that of one block, whatever the depth; the price
is roughly one extra forward pass. It works under plain `jax.grad` and `jax.jit`.

The RevNet/Reformer block on a stack (x1, x2):

  >>> def block():
  ...   return [ReversibleHalfResidual(LayerNorm(), attention_layer=CausalAttention(512, 8)),
  ...           ReversibleSwap(),
  ...           ReversibleHalfResidual(LayerNorm(), Dense(2048), Relu(), Dense(512)),
  ...           ReversibleSwap()]
  >>> model = Serial(Dup(), ReversibleSerial([block() for _ in range(6)]), Add())

(Build each block anew: repeating one instance would share its weights.)

Randomness and state are replayed, not stored: the backward calls each sublayer with
the same rng and the same input state as the forward did, so dropout masks and LSH
hashes are identical and the gradients equal plain backprop up to float rounding.
Gradients do not flow through state outputs (caches, counters).

Numerics: `reverse` computes x1 = y1 - f(x2), which loses the bits of x1 that the sum
y1 = x1 + f(x2) rounded away, and the loss adds up with depth. Measured on FF blocks
(d=64; max error / max |x|): float32 6e-8 after 1 block, 7e-7 after 16; bfloat16 4e-3
after 1 block, 3e-2 after 16. So the gradients of a bf16 reversible stack are noticeably
off those of plain backprop; keep the residual stream (x1, x2) in float32 and cast to
bf16 inside f when computing in bf16.
"""
import functools

import jax
import numpy as np

from plait.layers import base
from plait.layers.base import Layer, LayerError
from plait.layers.combinators import (
    Serial, _from_stack, _to_stack, run_scanned, serial_arity, sublayer_repeats)
from plait.layers.scan_layers import scan_steps
from plait.layers.serial_vjp import barrier as _barrier, first_output_vjp, zero_cotangent

__all__ = ['ReversibleLayer', 'ReversibleSelect', 'ReversibleSwap', 'ReversibleHalfResidual',
           'ReversibleSerial']


def _is_float0(x):
  return getattr(x, 'dtype', None) == jax.dtypes.float0


def _add_ct(a, b):
  """Sums two cotangents; float0 (from int/bool inputs such as masks) stays float0."""
  if _is_float0(a) or _is_float0(b):
    return a if _is_float0(b) else b
  return a + b


class ReversibleLayer(Layer):
  """A layer whose inputs can be computed from its outputs.

  Subclasses implement `reverse`; they may override `reverse_and_grad` to share work
  between the reconstruction and the vjp (as `ReversibleHalfResidual` does).
  """

  def reverse(self, outputs, weights=(), state=(), new_state=(), rng=None):
    """Returns the inputs x with forward(x, weights, state, rng) == (outputs, new_state).

    `state` is the state the forward got and `rng` the rng it got: randomness is
    replayed from them, never stored.
    """
    raise NotImplementedError(f'{self.name}: reverse is not implemented.')

  def reverse_and_grad(self, outputs, ct, weights=(), state=(), new_state=(), rng=None):
    """Returns (inputs, (inputs_ct, weights_ct)): `reverse`, then the vjp at those inputs.

    `ct` is the cotangent of `outputs`; the result's is that of the inputs and weights.
    """
    inputs = self.reverse(outputs, weights, state, new_state, rng)
    def run(x, w):
      return self.forward(x, w, state, rng)[0]
    _, vjp_fn = jax.vjp(run, inputs, weights)
    return inputs, vjp_fn(ct)


class ReversibleSelect(ReversibleLayer):
  """Permutes the top len(indices) stack items: output j is input indices[j].

    >>> ReversibleSelect([1, 0])   # swaps the top two, like ReversibleSwap()
  """

  def __init__(self, indices, name=None):
    indices = tuple(int(i) for i in indices)
    if sorted(indices) != list(range(len(indices))):
      raise ValueError(f'ReversibleSelect{list(indices)}: indices must be a permutation of '
                       f'0..{len(indices) - 1} to be reversible; use Select for copies or '
                       'drops outside a ReversibleSerial.')
    n = len(indices)
    super().__init__(n_in=n, n_out=n, name=name or f'ReversibleSelect{list(indices)}')
    self._indices = indices
    self._inverse = tuple(int(i) for i in np.argsort(indices))

  def _permute(self, values, order):
    stack = _to_stack(values, self.n_in)
    return _from_stack([stack[i] for i in order], self.n_in)

  def forward(self, inputs, weights, state, rng):
    return self._permute(inputs, self._indices), state

  def init_with_signature(self, input_signature, rng):
    return (), (), self._permute(input_signature, self._indices)

  def reverse(self, outputs, weights=(), state=(), new_state=(), rng=None):
    return self._permute(outputs, self._inverse)

  def reverse_and_grad(self, outputs, ct, weights=(), state=(), new_state=(), rng=None):
    return (self._permute(outputs, self._inverse), (self._permute(ct, self._inverse), ()))


class ReversibleSwap(ReversibleSelect):
  """Swaps the top two stack items: (x1, x2) -> (x2, x1)."""

  def __init__(self, name=None):
    super().__init__([1, 0], name=name or 'ReversibleSwap')


class ReversibleHalfResidual(ReversibleLayer):
  """Half of a RevNet block: (x1, x2, *rest) -> (x1 + f(x2, *rest), x2, *rest).

  f = Serial(*layers, attention_layer); it runs on the stack below x1 and only its first
  output is added, so e.g. an attention layer with use_mask=True can read a mask that
  travels along the stack: n_in = n_out = 1 + max(1, f.n_in).

    >>> ReversibleHalfResidual(LayerNorm(), attention_layer=CausalAttention(512, 8))
    >>> ReversibleHalfResidual(LayerNorm(), Dense(2048), Relu(), Dense(512))

  Weights and state are those of f, as a 1-tuple.
  """

  def __init__(self, *layers, attention_layer=None, name=None):
    f = Serial(*layers, attention_layer)
    n = 1 + max(1, f.n_in)
    super().__init__(n_in=n, n_out=n, name=name or 'ReversibleHalfResidual', sublayers=[f])

  def _f_inputs(self, context):
    f = self.sublayers[0]
    return context[0] if f.n_in <= 1 else tuple(context[:f.n_in])

  def _residual(self, context, weights, state, rng):
    """(first output of f on the context, f's new state)."""
    out, new_state = self.call_sublayer(0, self._f_inputs(context), weights[0], state[0], rng)
    return _to_stack(out, self.sublayers[0].n_out)[0], (new_state,)

  def forward(self, inputs, weights, state, rng):
    x1, *context = inputs
    residual, new_state = self._residual(context, weights, state, rng)
    return (x1 + residual,) + tuple(context), new_state

  def init_with_signature(self, input_signature, rng):
    _, *context = input_signature
    weights, state, _ = self.init_sublayer(0, self._f_inputs(context), rng)
    return (weights,), (state,), tuple(input_signature)

  def reverse(self, outputs, weights=(), state=(), new_state=(), rng=None):
    y1, *context = outputs
    residual, _ = self._residual(context, weights, state, rng)
    return (y1 - residual,) + tuple(context)

  def reverse_and_grad(self, outputs, ct, weights=(), state=(), new_state=(), rng=None):
    # One evaluation of f serves both the reconstruction and the vjp.
    y1, *context = outputs
    ct1, *ct_context = ct
    f = self.sublayers[0]
    if len(f.sublayers) > 1 and f.n_in >= 1:
      residual, ctx_ct, weights_ct = self._staged_vjp(context, ct1, weights, state, rng)
    else:
      def residual_fn(ctx, w):
        return self._residual(ctx, w, state, rng)[0]
      residual, vjp_fn = jax.vjp(residual_fn, context, weights)
      ctx_ct, weights_ct = vjp_fn(ct1.astype(residual.dtype))
    inputs = (y1 - residual,) + tuple(context)
    inputs_ct = (ct1,) + tuple(_add_ct(a, b) for a, b in zip(ct_context, ctx_ct))
    return inputs, (inputs_ct, weights_ct)

  def _staged_vjp(self, context, ct1, weights, state, rng):
    """f's residual and vjp, one sublayer of f at a time (see serial_vjp)."""
    f = self.sublayers[0]
    try:
      residual, (f_ct, f_weights_ct) = first_output_vjp(
          f, self._f_inputs(context), weights[0], state[0], base.sublayer_rng(rng, 0), ct1)
    except LayerError as e:
      e.prepend(self.name, 0)
      raise
    unused = [zero_cotangent(c) for c in context[f.n_in:]]
    return residual, _to_stack(f_ct, f.n_in) + unused, (f_weights_ct,)


class ReversibleSerial(ReversibleLayer):
  """Runs reversible sublayers in sequence, recomputing activations on the backward pass.

  Memory for gradients does not grow with the number of sublayers: only the final
  outputs are kept, and each sublayer's inputs are rebuilt with `reverse` in the
  backward pass. Gradients w.r.t. inputs and weights equal those of `Serial` with the
  same sublayers (same weights tree, same per-sublayer rng), up to float rounding.

    >>> blocks = [[ReversibleHalfResidual(LayerNorm(), Dense(d)), ReversibleSwap()]
    ...           for _ in range(4)]
    >>> model = ReversibleSerial(blocks)      # (x1, x2) -> (y1, y2)
    >>> weights, state = model.init((x1, x2))
    >>> grads = jax.grad(loss)(weights)       # loss calls model.pure_fn

  Values on the stack that are not floats (e.g. a bool mask read by attention) pass
  through and get float0 cotangents. Without differentiation (eval, predict) the plain
  forward runs and nothing is recomputed.

  scan_layers=True runs repeated groups of sublayers (e.g. the Reformer's layers, or
  [chunked, LSH] pairs of them) as one lax.scan in the forward, and the backward as one
  reverse scan whose step is a group's reverse_and_grad: XLA compiles one group each
  way. Memory stays flat in depth; weights, rng and results are the unrolled stack's.
  """

  def __init__(self, *layers, name=None, scan_layers=False):
    layers = Serial(*layers).sublayers  # Flattens lists, drops None.
    for i, l in enumerate(layers):
      if not isinstance(l, ReversibleLayer):
        raise TypeError(
            f'ReversibleSerial: sublayer {i} ({l.name}, {type(l).__name__}) is not a '
            'ReversibleLayer. Use ReversibleHalfResidual(...) for residual blocks and '
            'ReversibleSwap()/ReversibleSelect(...) to reorder; put other layers before or '
            'after the ReversibleSerial.')
    n_in, n_out = serial_arity(layers) if layers else (1, 1)
    super().__init__(n_in=n_in, n_out=n_out, name=name or 'ReversibleSerial', sublayers=layers)
    self._scan_layers = scan_layers
    self._plan = None

  def scan_plan(self):
    """Segments of the sublayers: an index (alone) or (start, period, count) repeats."""
    if self._plan is None:
      self._plan = (sublayer_repeats(self) if self._scan_layers
                    else list(range(len(self.sublayers))))
    return self._plan

  def forward(self, inputs, weights, state, rng):
    return _run_reversible(self, inputs, weights, state, rng)

  def _plain_forward(self, inputs, weights, state, rng):
    if self._scan_layers:
      return run_scanned(self, inputs, weights, state, rng)
    stack = _to_stack(inputs, self.n_in)
    new_state = []
    for i, layer in enumerate(self.sublayers):
      x, rest = stack[:layer.n_in], stack[layer.n_in:]
      y, s = self.call_sublayer(i, _from_stack(x, layer.n_in), weights[i], state[i], rng)
      stack = _to_stack(y, layer.n_out) + rest
      new_state.append(s)
    return _from_stack(stack, self.n_out), tuple(new_state)

  def init_with_signature(self, input_signature, rng):
    return Serial.init_with_signature(self, input_signature, rng)

  def reverse(self, outputs, weights=(), state=(), new_state=(), rng=None):
    stack = _to_stack(outputs, self.n_out)
    for i in reversed(range(len(self.sublayers))):
      layer = self.sublayers[i]
      y, rest = stack[:layer.n_out], stack[layer.n_out:]
      x = self._guarded(i, 'reverse', y, lambda l, y=y: l.reverse(
          _from_stack(y, l.n_out), weights[i], state[i], new_state[i],
          base.sublayer_rng(rng, i)))
      stack = _to_stack(x, layer.n_in) + rest
    return _from_stack(stack, self.n_in)

  def reverse_and_grad(self, outputs, ct, weights=(), state=(), new_state=(), rng=None):
    stack, cts = _to_stack(outputs, self.n_out), _to_stack(ct, self.n_out)
    weights_ct = [None] * len(self.sublayers)
    for segment in reversed(self.scan_plan()):
      if isinstance(segment, int):
        i = segment
        above = weights_ct[i + 1:i + 2]
        stack, cts, weights_ct[i + 1:i + 2], weights_ct[i] = self._reverse_one(
            i, stack, cts, above, weights[i], state[i], new_state[i], base.sublayer_rng(rng, i))
      else:
        stack, cts = self._reverse_repeats(segment, stack, cts, weights_ct, weights, state,
                                           new_state, rng)
    return _from_stack(stack, self.n_in), (_from_stack(cts, self.n_in), tuple(weights_ct))

  def _reverse_one(self, i, stack, cts, above, weights_i, state_i, new_state_i, rng_i):
    """(inputs stack, their cts, above, weights_ct[i]) of sublayer i from its outputs.

    `above` is [] or [weight cotangents of the layer above], returned through the barrier.
    """
    layer = self.sublayers[i]
    k = layer.n_out
    y, rest, g, g_rest = stack[:k], stack[k:], cts[:k], cts[k:]
    # The barrier keeps XLA from merging this layer's recomputation with the
    # forward pass (CSE), which would keep forward intermediates alive until here,
    # and from starting it before the layer above is done. It also takes the layer
    # above's weight cotangents: without that, XLA's GPU scheduler defers small
    # weight gradients (LayerNorm's) to the end of the program, keeping each
    # layer's activation and cotangent alive until then (memory growing with depth).
    # (`above` is that layer's cotangents as a 1-list, or [] for the top layer.)
    y, g, w_i, above = _barrier((y, g, weights_i, list(above)))
    x, (x_ct, weights_ct_i) = self._guarded(
        i, 'reverse_and_grad', y, lambda l: l.reverse_and_grad(
            _from_stack(y, k), _from_stack(g, k), w_i, state_i, new_state_i, rng_i))
    return (_to_stack(x, layer.n_in) + rest, _to_stack(x_ct, layer.n_in) + g_rest, above,
            weights_ct_i)

  def _reverse_repeats(self, segment, stack, cts, weights_ct, weights, state, new_state, rng):
    """reverse_and_grad of a (start, period, count) repeat: one reverse scan of its groups.

    A scan step rebuilds one group's inputs and cotangents from its outputs; the groups'
    weight cotangents come out stacked and go to their per-layer slots of `weights_ct`.
    """
    start, period, count = segment
    groups = [tuple(range(start + g * period, start + (g + 1) * period)) for g in range(count)]
    n = serial_arity(self.sublayers[start:start + period])[0]
    args = [(tuple(weights[i] for i in g), tuple(state[i] for i in g),
             tuple(new_state[i] for i in g),
             None if rng is None else tuple(base.sublayer_rng(rng, i) for i in g))
            for g in groups]
    steps = [functools.partial(self._reverse_group, g) for g in groups]
    result = scan_steps(steps, (tuple(stack[:n]), tuple(cts[:n])), args, reverse=True)
    if result is None:  # Not the same program: unrolled, as without scan_layers.
      for g, (w, s, ns, r) in reversed(list(zip(groups, args))):
        for q in reversed(range(period)):
          i = g[q]
          stack, cts, weights_ct[i + 1:i + 2], weights_ct[i] = self._reverse_one(
              i, stack, cts, weights_ct[i + 1:i + 2], w[q], s[q], ns[q],
              None if r is None else r[q])
      return stack, cts
    (top, top_ct), group_cts = result
    for g, cts_g in zip(groups, group_cts):
      for i, c in zip(g, cts_g):
        weights_ct[i] = c
    return list(top) + list(stack[n:]), list(top_ct) + list(cts[n:])

  def _reverse_group(self, indices, carry, args):
    """One reverse scan step: sublayers `indices`, the top first, on the carried (y, ct)."""
    (stack, cts), (weights, state, new_state, rngs) = carry, args
    stack, cts = list(stack), list(cts)
    weights_ct = [None] * len(indices)
    for q in reversed(range(len(indices))):
      stack, cts, weights_ct[q + 1:q + 2], weights_ct[q] = self._reverse_one(
          indices[q], stack, cts, weights_ct[q + 1:q + 2], weights[q], state[q], new_state[q],
          None if rngs is None else rngs[q])
    return (tuple(stack), tuple(cts)), tuple(weights_ct)

  def _guarded(self, i, method, outputs, fn):
    """fn(sublayer i), with errors reported as LayerErrors on this layer's path."""
    layer = self.sublayers[i]
    try:
      try:
        return fn(layer)
      except LayerError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        raise LayerError(layer, method, outputs, f'{type(e).__name__}: {e}') from e
    except LayerError as e:
      e.prepend(self.name, i)
      raise


# ----- the custom_vjp: forward keeps outputs only, backward reverses -----
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _run_reversible(layer, inputs, weights, state, rng):
  return layer._plain_forward(inputs, weights, state, rng)  # pylint: disable=protected-access


def _run_reversible_fwd(layer, inputs, weights, state, rng):
  plain_forward = layer._plain_forward  # pylint: disable=protected-access
  outputs, new_state = plain_forward(inputs, weights, state, rng)
  # No per-layer activations: the backward rebuilds them from `outputs`.
  return (outputs, new_state), (outputs, weights, state, new_state, rng)


def _run_reversible_bwd(layer, residuals, cts):
  outputs, weights, state, new_state, rng = residuals
  outputs_ct, _ = cts  # No gradients through state.
  _, (inputs_ct, weights_ct) = layer.reverse_and_grad(
      outputs, outputs_ct, weights, state, new_state, rng)
  return inputs_ct, weights_ct, None, None


_run_reversible.defvjp(_run_reversible_fwd, _run_reversible_bwd)
