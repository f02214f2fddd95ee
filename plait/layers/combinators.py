"""Combinators: layers built from other layers, with data-stack arity.

The data stack is a tuple whose first element is the top. A sublayer pops its
`n_in` values from the top and pushes its `n_out` outputs back on top.

  >>> mlp = Serial(Dense(64), Relu(), Dense(10))
  >>> residual = Residual(LayerNorm(), Dense(512))
"""
import functools

import jax
import jax.numpy as jnp

from plait import shapes
from plait.layers import base
from plait.layers import scan_layers
from plait.layers.base import Fn, Layer
from plait.layers.chunked_map import chunked_map


def _flatten_layers(layers):
  out = []
  for l in layers:
    if l is None:
      continue
    if isinstance(l, (list, tuple)):
      out.extend(_flatten_layers(l))
    elif isinstance(l, Layer):
      out.append(l)
    else:
      raise TypeError(f'Expected a Layer (or list of them), got {type(l).__name__}: {l!r}')
  return out


def _to_stack(inputs, n_in):
  if n_in == 1:
    return [inputs]
  return list(inputs)


def _from_stack(stack, n_out):
  if n_out == 1:
    return stack[0]
  return tuple(stack)


def _pop(stack, n):
  """Pops n values: the layer input (one value or tuple) and the rest of the stack."""
  head, rest = stack[:n], stack[n:]
  return (head[0] if n == 1 else tuple(head)), rest


def _push(outputs, n_out, rest):
  return (list(outputs) if n_out != 1 else [outputs]) + list(rest)


def serial_arity(layers):
  """(n_in, n_out) of running `layers` in sequence on a data stack."""
  n_in, depth = 0, 0
  for l in layers:
    if l.n_in > depth:
      n_in += l.n_in - depth
      depth = l.n_in
    depth += l.n_out - l.n_in
  return n_in, depth


class Serial(Layer):
  """Runs sublayers one after another on a data stack.

  n_in is how many values the sequence needs that it did not produce itself;
  n_out is what is left on the stack at the end.

  scan_layers=True runs consecutive repeats of identically built sublayers (e.g. a
  model's decoder blocks, or groups like [dense, chunked] blocks) as one `lax.scan`
  over their stacked weights, so XLA compiles the repeated body once (see
  scan_layers.py). Same weights tree, same per-sublayer rng, same results.

    >>> Serial(Embedding(256, 64), [DecoderBlock(64, 256, 4) for _ in range(6)],
    ...        scan_layers=True)
  """

  def __init__(self, *sublayers, name=None, scan_layers=False):
    layers = _flatten_layers(sublayers)
    n_in, n_out = serial_arity(layers) if layers else (1, 1)
    super().__init__(n_in=n_in, n_out=n_out, name=name or 'Serial', sublayers=layers)
    self._scan_layers = scan_layers
    self._plan = None

  def arity_note(self):
    """Names the sublayers that reach below what earlier sublayers pushed."""
    depth, needs = 0, []
    for i, l in enumerate(self.sublayers):
      if l.n_in > depth:
        needs.append(f'sublayer {i} ({l.name}) pops {l.n_in} with {depth} produced before it')
        depth = l.n_in
      depth += l.n_out - l.n_in
    return ' Inputs are needed where ' + '; '.join(needs) + '.' if needs else ''

  def forward(self, inputs, weights, state, rng):
    if not self.sublayers:
      return inputs, state
    if self._scan_layers:
      return run_scanned(self, inputs, weights, state, rng)
    stack = _to_stack(inputs, self.n_in)
    new_state = []
    for i, layer in enumerate(self.sublayers):
      x, rest = _pop(stack, layer.n_in)
      y, s = self.call_sublayer(i, x, weights[i], state[i], rng)
      stack = _push(y, layer.n_out, rest)
      new_state.append(s)
    return _from_stack(stack, self.n_out), tuple(new_state)

  def scan_plan(self):
    """Segments of the sublayers: an index (run alone) or (start, period, count) repeats."""
    if self._plan is None:
      self._plan = sublayer_repeats(self)
    return self._plan

  def init_with_signature(self, input_signature, rng):
    if not self.sublayers:
      return (), (), input_signature
    stack = _to_stack(input_signature, self.n_in)
    weights, state = [], []
    for i, layer in enumerate(self.sublayers):
      x, rest = _pop(stack, layer.n_in)
      w, s, y = self.init_sublayer(i, x, rng)
      stack = _push(y, layer.n_out, rest)
      weights.append(w)
      state.append(s)
    return tuple(weights), tuple(state), _from_stack(stack, self.n_out)


def sublayer_repeats(layer):
  """repeat_plan of `layer`'s sublayers, keyed by how they are built (checked when run)."""
  layers = layer.sublayers
  keys = [(type(l), l.n_in, l.n_out, repr(l)) for l in layers]
  def balanced(start, period):
    n_in, n_out = serial_arity(layers[start:start + period])
    return n_in == n_out and n_in > 0
  return scan_layers.repeat_plan(keys, balanced)


def run_scanned(layer, inputs, weights, state, rng):
  """Serial.forward of `layer`, with its repeats (layer.scan_plan()) run by lax.scan."""
  stack = _to_stack(inputs, layer.n_in)
  new_state = [None] * len(layer.sublayers)
  def run_one(i, stack):
    x, rest = _pop(stack, layer.sublayers[i].n_in)
    y, new_state[i] = layer.call_sublayer(i, x, weights[i], state[i], rng)
    return _push(y, layer.sublayers[i].n_out, rest)
  for segment in layer.scan_plan():
    if isinstance(segment, int):
      stack = run_one(segment, stack)
      continue
    start, period, count = segment
    groups = [range(start + g * period, start + (g + 1) * period) for g in range(count)]
    n_carry = serial_arity(layer.sublayers[start:start + period])[0]
    args = [(tuple(weights[i] for i in g), tuple(state[i] for i in g),
             None if rng is None else tuple(base.sublayer_rng(rng, i) for i in g))
            for g in groups]
    steps = [functools.partial(_group_step, layer, g) for g in groups]
    result = scan_layers.scan_steps(steps, tuple(stack[:n_carry]), args)
    if result is None:  # Not the same program: unrolled, as without scan_layers.
      for i in range(start, start + period * count):
        stack = run_one(i, stack)
      continue
    carry, group_states = result
    for g, states in zip(groups, group_states):
      for i, s in zip(g, states):
        new_state[i] = s
    stack = list(carry) + list(stack[n_carry:])
  return _from_stack(stack, layer.n_out), tuple(new_state)


def _group_step(layer, indices, carry, args):
  """One scan step: sublayers `indices` of `layer` on the carried top of the stack."""
  weights, state, rngs = args
  stack, new_state = list(carry), []
  for q, i in enumerate(indices):
    sub = layer.sublayers[i]
    x, rest = _pop(stack, sub.n_in)
    y, s = layer.call_sublayer_with_rng(i, x, weights[q], state[q],
                                        None if rngs is None else rngs[q])
    stack = _push(y, sub.n_out, rest)
    new_state.append(s)
  return tuple(stack), tuple(new_state)


class Branch(Layer):
  """Runs each sublayer on (copies of) the top of the stack; concatenates their outputs.

  n_in = max of the sublayers' n_in; n_out = sum of their n_out.
  """

  def __init__(self, *sublayers, name=None):
    layers = [l if l is not None else Serial() for l in _flatten_branches(sublayers)]
    if not layers:
      raise ValueError('Branch needs at least one sublayer.')
    super().__init__(n_in=max(l.n_in for l in layers), n_out=sum(l.n_out for l in layers),
                     name=name or 'Branch', sublayers=layers)

  def _run(self, inputs, per_layer):
    stack = _to_stack(inputs, self.n_in)
    outs, extras = [], []
    for i, layer in enumerate(self.sublayers):
      x, _ = _pop(stack, layer.n_in)
      y, extra = per_layer(i, x)
      outs.extend(_push(y, layer.n_out, []))
      extras.append(extra)
    return outs, extras

  def forward(self, inputs, weights, state, rng):
    outs, new_state = self._run(
        inputs, lambda i, x: self.call_sublayer(i, x, weights[i], state[i], rng))
    return _from_stack(outs, self.n_out), tuple(new_state)

  def init_with_signature(self, input_signature, rng):
    inits = []
    def per_layer(i, x):
      w, s, y = self.init_sublayer(i, x, rng)
      inits.append((w, s))
      return y, None
    outs, _ = self._run(input_signature, per_layer)
    return (tuple(w for w, _ in inits), tuple(s for _, s in inits), _from_stack(outs, self.n_out))


def _flatten_branches(layers):
  # Branch(None, f) keeps None as an identity branch; lists become Serial.
  out = []
  for l in layers:
    if isinstance(l, (list, tuple)):
      out.append(Serial(*l))
    else:
      out.append(l)
  return out


class Parallel(Layer):
  """Runs sublayer i on its own slice of the stack: n_in and n_out are sums."""

  def __init__(self, *sublayers, name=None):
    layers = [Serial() if l is None else (Serial(*l) if isinstance(l, (list, tuple)) else l)
              for l in sublayers]
    if not layers:
      raise ValueError('Parallel needs at least one sublayer.')
    super().__init__(n_in=sum(l.n_in for l in layers), n_out=sum(l.n_out for l in layers),
                     name=name or 'Parallel', sublayers=layers)

  def _run(self, inputs, per_layer):
    stack = _to_stack(inputs, self.n_in)
    outs, extras = [], []
    for i, layer in enumerate(self.sublayers):
      x, stack = _pop(stack, layer.n_in)
      y, extra = per_layer(i, x)
      outs.extend(_push(y, layer.n_out, []))
      extras.append(extra)
    return outs, extras

  forward = Branch.forward
  init_with_signature = Branch.init_with_signature


class Residual(Layer):
  """(x, *side) -> (body(x, *side)[0] + shortcut(x), *body(x, *side)[1:]).

  The body's first output is added to the shortcut (identity by default); its other
  outputs pass through, so side inputs such as a mask ride along, as in Trax:

    >>> Residual(LayerNorm(), Dense(d_model))                         # x -> x + f(x)
    >>> Residual(LayerNorm(), SelfAttention(d, use_mask=True), Dropout(0.1))
    ... # (x, mask) -> (x + attention, mask): LayerNorm pops only x
  """

  def __init__(self, *layers, shortcut=None, name=None):
    body = Serial(*layers)
    if body.n_out < 1:
      raise ValueError(f'Residual: {body.name} must have an output to add to, has none.')
    if shortcut is not None and shortcut.n_out != 1:
      raise ValueError(f'Residual: shortcut {shortcut.name} must have n_out=1 to be added, '
                       f'has {shortcut.n_out}.')
    subs = [body] if shortcut is None else [body, shortcut]
    n_in = max([body.n_in] + ([shortcut.n_in] if shortcut is not None else [1]))
    super().__init__(n_in=n_in, n_out=body.n_out, name=name or 'Residual', sublayers=subs)

  def _add(self, body_out, shortcut):
    outs = _push(body_out, self.n_out, [])
    return _from_stack([outs[0] + shortcut] + outs[1:], self.n_out)

  def forward(self, inputs, weights, state, rng):
    stack = _to_stack(inputs, self.n_in)
    y, s_body = self.call_sublayer(0, _pop(stack, self.sublayers[0].n_in)[0],
                                   weights[0], state[0], rng)
    if len(self.sublayers) == 1:
      return self._add(y, stack[0]), (s_body,)
    sc, s_sc = self.call_sublayer(1, _pop(stack, self.sublayers[1].n_in)[0],
                                  weights[1], state[1], rng)
    return self._add(y, sc), (s_body, s_sc)

  def init_with_signature(self, input_signature, rng):
    stack = _to_stack(input_signature, self.n_in)
    ws, ss, outs = [], [], []
    for i, l in enumerate(self.sublayers):
      w, s, out = self.init_sublayer(i, _pop(stack, l.n_in)[0], rng)
      ws.append(w)
      ss.append(s)
      outs.append(out)
    return tuple(ws), tuple(ss), outs[0]


class Select(Layer):
  """Copies/reorders stack items: Select([0, 0]) duplicates, Select([1, 0]) swaps.

  n_in defaults to max(indices) + 1; items below that are dropped unless selected.
  """

  def __init__(self, indices, n_in=None, name=None):
    indices = tuple(int(i) for i in indices)
    n_in = max(indices) + 1 if n_in is None else n_in
    if indices and max(indices) >= n_in:
      raise ValueError(f'Select{list(indices)}: index {max(indices)} >= n_in={n_in}.')
    super().__init__(n_in=n_in, n_out=len(indices),
                     name=name or f'Select{list(indices)}')
    self._indices = indices

  def forward(self, inputs, weights, state, rng):
    stack = _to_stack(inputs, self.n_in)
    return _from_stack([stack[i] for i in self._indices], self.n_out), state

  def init_with_signature(self, input_signature, rng):
    return (), (), self.forward(input_signature, (), (), None)[0]


def Dup():  # pylint: disable=invalid-name
  """Duplicates the top of the stack."""
  return Select([0, 0], name='Dup')


def Swap():  # pylint: disable=invalid-name
  """Swaps the top two stack items."""
  return Select([1, 0], name='Swap')


def Drop():  # pylint: disable=invalid-name
  """Drops the top of the stack."""
  return Select([], n_in=1, name='Drop')


def Add():  # pylint: disable=invalid-name
  """Adds the top two stack items."""
  return Fn('Add', lambda x, y: x + y)


def Concatenate(n_items=2, axis=-1):  # pylint: disable=invalid-name
  """Concatenates the top n_items stack items along `axis`."""
  if n_items < 2:
    raise ValueError(f'Concatenate needs n_items >= 2, got {n_items}.')
  return base.PureLayer(lambda xs: jnp.concatenate(xs, axis=axis), n_in=n_items,
                        name=f'Concatenate_{n_items}')


class Scan(Layer):
  """Runs `layer` along `axis` with a carry, via lax.scan.

  The layer takes (x_1..x_k, carry_1..carry_c) slices and returns (y_1..y_m, carry'_1..carry'_c);
  the last `n_carry` inputs are carries (not scanned). Weights are shared across steps.
  """

  def __init__(self, layer, axis=0, n_carry=1, remat=False, name=None):
    if layer.n_in <= n_carry or layer.n_out < n_carry:
      raise ValueError(f'Scan: {layer.name} needs n_in > n_carry and n_out >= n_carry '
                       f'(n_in={layer.n_in}, n_out={layer.n_out}, n_carry={n_carry}).')
    super().__init__(n_in=layer.n_in, n_out=layer.n_out, name=name or f'Scan', sublayers=[layer])
    self._axis, self._n_carry, self._remat = axis, n_carry, remat

  def _split(self, stack):
    n_xs = self.n_in - self._n_carry
    return stack[:n_xs], stack[n_xs:]

  def forward(self, inputs, weights, state, rng):
    layer = self.sublayers[0]
    xs, carry = self._split(_to_stack(inputs, self.n_in))
    xs = [jnp.moveaxis(x, self._axis, 0) for x in xs]
    n_steps = xs[0].shape[0]
    def step(c, xs_t):
      carry_t, state_t = c
      x_t, i = xs_t
      stack = list(x_t) + list(carry_t)
      y, s = self.call_sublayer(0, _from_stack(stack, layer.n_in), weights[0], state_t,
                                None if rng is None else jax.random.fold_in(rng, i))
      ys = _push(y, layer.n_out, [])
      n_y = layer.n_out - self._n_carry
      return (tuple(ys[n_y:]), s), tuple(ys[:n_y])
    if self._remat:
      step = jax.checkpoint(step)
    (carry, new_state), ys = jax.lax.scan(step, (tuple(carry), state[0]),
                                          (tuple(xs), jnp.arange(n_steps)))
    ys = [jnp.moveaxis(y, 0, self._axis) for y in ys]
    return _from_stack(ys + list(carry), self.n_out), (new_state,)

  def init_with_signature(self, input_signature, rng):
    layer = self.sublayers[0]
    xs, carry = self._split(_to_stack(input_signature, self.n_in))
    n_steps = xs[0].shape[self._axis]
    def drop_axis(s):
      shape = list(s.shape)
      del shape[self._axis]
      return shapes.ShapeDtype(shape, s.dtype)
    slices = [drop_axis(x) for x in xs]
    w, s, out = self.init_sublayer(0, _from_stack(slices + list(carry), layer.n_in), rng)
    outs = _push(out, layer.n_out, [])
    n_y = layer.n_out - self._n_carry
    def add_axis(sig):
      shape = list(sig.shape)
      shape.insert(self._axis % (len(shape) + 1), n_steps)
      return shapes.ShapeDtype(shape, sig.dtype)
    ys = [add_axis(y) for y in outs[:n_y]]
    return (w,), (s,), _from_stack(ys + outs[n_y:], self.n_out)


class Chunk(Layer):
  """Applies `layer` to chunks of `chunk_size` along the leading axis, one at a time.

  Saves memory for position-wise layers (e.g. Reformer's chunked feed-forward):
  with remat (the default, via `chunked_map`), only one chunk's activations are alive
  at a time, also in the backward pass, which recomputes each chunk; and its buffers are
  made from its inputs, so in a reversible stack they do not pile up across layers.
  remat=False runs `lax.map` and keeps every chunk's activations for the backward.
  A last partial chunk is run on its own. chunk_size=0 disables chunking.

  Chunks run independently, so `layer` must be stateless (no state leaves): a stateful
  sublayer is refused at init (its state could not be threaded through the chunks).
  """

  def __init__(self, layer, chunk_size, remat=True, name=None):
    if chunk_size < 0:
      raise ValueError(f'Chunk: chunk_size must be >= 0, got {chunk_size}.')
    super().__init__(n_in=layer.n_in, n_out=layer.n_out, name=name or f'Chunk_{chunk_size}',
                     sublayers=[layer])
    self._chunk_size, self._remat = chunk_size, remat

  def forward(self, inputs, weights, state, rng):
    layer = self.sublayers[0]
    stack = _to_stack(inputs, self.n_in)
    n = stack[0].shape[0]
    c = self._chunk_size
    for x in stack:
      if x.shape[0] != n:
        raise ValueError(f'Chunk: all inputs need the same leading size, got {shapes.describe(stack)}')
    if c == 0 or n <= c:
      return self.call_sublayer(0, inputs, weights[0], state[0], rng)[0], state
    def run(w, consts, x_stack, i):
      # Everything arrives as an argument (chunked_map differentiates w and x_stack).
      # Each chunk gets its own rng so dropout masks differ between chunks.
      s, r = consts
      chunk_rng = None if r is None else jax.random.fold_in(r, i)
      y = self.call_sublayer(0, _from_stack(list(x_stack), layer.n_in), w, s, chunk_rng)[0]
      return y, ()
    n_chunks, n_full = n // c, (n // c) * c
    chunked = tuple(x[:n_full].reshape((n_chunks, c) + x.shape[1:]) for x in stack)
    consts = (state[0], rng)
    if self._remat:
      ys, _ = chunked_map(run, chunked, weights[0], consts)
    else:
      ys, _ = jax.lax.map(lambda a: run(weights[0], consts, *a), (chunked, jnp.arange(n_chunks)))
    ys = [y.reshape((n_full,) + y.shape[2:]) for y in _push(ys, layer.n_out, [])]
    if n_full < n:
      tail_run = jax.checkpoint(run) if self._remat else run
      tail, _ = tail_run(weights[0], consts, tuple(x[n_full:] for x in stack), n_chunks)
      ys = [jnp.concatenate([y, t], axis=0) for y, t in zip(ys, _push(tail, layer.n_out, []))]
    return _from_stack(ys, self.n_out), state

  def init_with_signature(self, input_signature, rng):
    w, s, out = self.init_sublayer(0, input_signature, rng)
    if jax.tree_util.tree_leaves(s):
      raise ValueError(f'{self.name}: sublayer {self.sublayers[0].name} has state '
                       f'{shapes.describe(s)}, but chunks run independently and cannot thread '
                       'state; chunk only stateless (position-wise) layers, or use Scan to '
                       'carry state from chunk to chunk.')
    return (w,), (s,), out


class Cond(Layer):
  """if cond(x) then true(x) else false(x), via lax.cond (false defaults to identity).

  `cond` must return a scalar boolean; `true` and `false` must have equal arity. The taken
  branch's state is updated and the other's is kept, as if the branch had run alone.
  """

  def __init__(self, cond, true, false=None, name=None):
    false = false if false is not None else Select(list(range(true.n_in)), name='Identity')
    if (true.n_in, true.n_out) != (false.n_in, false.n_out):
      raise ValueError(f'Cond: true ({true.n_in}->{true.n_out}) and false '
                       f'({false.n_in}->{false.n_out}) branches must have the same arity.')
    n_in = max(cond.n_in, true.n_in)
    super().__init__(n_in=n_in, n_out=true.n_out, name=name or 'Cond',
                     sublayers=[cond, true, false])

  def forward(self, inputs, weights, state, rng):
    stack = _to_stack(inputs, self.n_in)
    cond, true, _ = self.sublayers
    pred, s_cond = self.call_sublayer(0, _pop(stack, cond.n_in)[0], weights[0], state[0], rng)
    x = _pop(stack, true.n_in)[0]
    def branch(i):
      def run(operands):
        out, new = self.call_sublayer(i, operands, weights[i], state[i], rng)
        branch_states = [state[1], state[2]]
        branch_states[i - 1] = new
        return out, tuple(branch_states)
      return run
    out, (s_true, s_false) = jax.lax.cond(jnp.reshape(pred, ()).astype(bool), branch(1),
                                          branch(2), x)
    return out, (s_cond, s_true, s_false)

  def init_with_signature(self, input_signature, rng):
    stack = _to_stack(input_signature, self.n_in)
    ws, ss, outs = [], [], []
    for i, l in enumerate(self.sublayers):
      w, s, out = self.init_sublayer(i, _pop(stack, l.n_in)[0], rng)
      ws.append(w)
      ss.append(s)
      outs.append(out)
    if outs[1] != outs[2]:
      raise ValueError(f'Cond: true and false branches give different outputs: {outs[1]} vs {outs[2]}')
    return tuple(ws), tuple(ss), outs[1]
