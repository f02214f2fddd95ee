"""The layer contract: immutable descriptions with pure init and apply.

A layer pops `n_in` values off a data stack and pushes `n_out`. Its weights and
state are pytrees (nested tuples) that mirror the layer tree: for a layer with
sublayers, entry i of its weights is sublayer i's weights.

  >>> layer = Dense(4)
  >>> weights, state = layer.init(ShapeDtype((2, 3)), rng=jax.random.key(0))
  >>> y, state = layer.pure_fn(jnp.ones((2, 3)), weights, state, rng=None)
  >>> y.shape
  (2, 4)

`init` is pure: it returns weights and state and stores nothing (so it is safe inside
`jax.eval_shape` or `jit`). Notebook sugar is separate: `layer(x)` initializes on its
first call (rng 0, or weights set with `layer.weights = ...`) and remembers its weights
and state; that cache is the only mutable part of a layer, and `pure_fn` never reads it.
"""
import os
import sys

import jax
import numpy as np

from plait import shapes

_LAYERS_DIR = os.path.dirname(os.path.abspath(__file__))


class LayerError(Exception):
  """An error inside a layer, naming its path, creation site and input shapes.

  The path grows as the error passes up through combinators, e.g.
  `Serial/Branch[1]/Dense_64`: Branch is sublayer 1 of Serial.
  """

  def __init__(self, layer, method, inputs, message):
    self.segments = [layer.name]
    self.method = method
    self.caller = layer.caller
    self.input_shapes = shapes.describe(inputs)
    self.message = message
    super().__init__()

  def prepend(self, name, index):
    self.segments[0] = f'{self.segments[0]}[{index}]' if index is not None else self.segments[0]
    self.segments.insert(0, name)

  @property
  def path(self):
    return '/'.join(self.segments)

  def __str__(self):
    return (f'in layer {self.path} ({self.method}):\n'
            f'  layer created at {self.caller}\n'
            f'  input shapes: {self.input_shapes}\n'
            f'  {self.message}')


def _creation_site():
  """file:line of the first frame outside plait/layers (where the user built the layer)."""
  frame = sys._getframe(2)
  while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)).startswith(_LAYERS_DIR):
    frame = frame.f_back
  if frame is None:
    return '<unknown>'
  return f'{frame.f_code.co_filename}:{frame.f_lineno}'


def _error_text(exc):
  return f'{type(exc).__name__}: {exc}'


class Layer:
  """Base class. Subclasses override `forward` and, if they have weights, `init_weights_and_state`.

  Args:
    n_in: how many values this layer pops from the data stack.
    n_out: how many values it pushes.
    name: shown in repr and error paths (defaults to the class name).
    sublayers: child layers; their weights/state are entries 0..k-1 of this layer's.
  """

  def __init__(self, n_in=1, n_out=1, name=None, sublayers=()):
    if n_in < 0 or n_out < 0:
      raise ValueError(f'n_in and n_out must be >= 0, got {n_in}, {n_out}')
    self._n_in = n_in
    self._n_out = n_out
    self._name = name or type(self).__name__
    self._sublayers = tuple(sublayers)
    for i, s in enumerate(self._sublayers):
      if not isinstance(s, Layer):
        raise TypeError(f'{self._name}: sublayer {i} is {type(s).__name__}, not a Layer: {s!r}')
    self._caller = _creation_site()
    self._cache = None  # (weights, state) for notebook sugar only.
    self._shared_paths = None

  # ----- description -----
  @property
  def n_in(self):
    return self._n_in

  @property
  def n_out(self):
    return self._n_out

  @property
  def name(self):
    return self._name

  @property
  def sublayers(self):
    return self._sublayers

  @property
  def caller(self):
    return self._caller

  def __repr__(self):
    if not self._sublayers:
      return self._name
    inner = '\n'.join(_indent(repr(s)) for s in self._sublayers)
    return f'{self._name}[\n{inner}\n]'

  # ----- to override -----
  def forward(self, inputs, weights, state, rng):
    """Returns (outputs, new_state). `inputs` is one array if n_in == 1, else a tuple."""
    raise NotImplementedError(f'{type(self).__name__}.forward')

  def init_weights_and_state(self, input_signature, rng):
    """Returns (weights, state) for a leaf layer; default: no weights, no state."""
    del input_signature, rng
    return (), ()

  def init_with_signature(self, input_signature, rng):
    """Returns (weights, state, output_signature). Combinators override to chain sublayers."""
    weights, state = self.init_weights_and_state(input_signature, rng)
    def apply(x, w, s):
      return self.forward(x, w, s, rng)[0]
    out = jax.eval_shape(apply, shapes.to_structs(input_signature), weights, state)
    return weights, state, shapes.from_structs(out)

  # ----- guarded internals (combinators call these on sublayers) -----
  def apply(self, inputs, weights, state, rng):
    """forward() with arity checks and LayerError wrapping; no weight-sharing expansion."""
    self._check_arity(inputs)
    try:
      return self.forward(inputs, weights, state, rng)
    except LayerError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise LayerError(self, 'pure_fn', inputs, _error_text(e)) from e

  def init_guarded(self, input_signature, rng):
    self._check_arity(input_signature)
    try:
      return self.init_with_signature(input_signature, rng)
    except LayerError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise LayerError(self, 'init', input_signature, _error_text(e)) from e

  def _check_arity(self, inputs):
    if self._n_in == 1:
      if isinstance(inputs, (tuple, list)):
        raise LayerError(self, 'arity', inputs,
                         f'{self._name} takes 1 input (an array), but got a tuple of {len(inputs)}.')
      return
    got = len(inputs) if isinstance(inputs, (tuple, list)) else 1
    if got != self._n_in:
      raise LayerError(self, 'arity', inputs,
                       f'{self._name} needs {self._n_in} inputs, got {got}.{self.arity_note()}')

  def call_sublayer(self, i, inputs, weights, state, rng):
    """Applies sublayer i, adding this layer to the path of any LayerError."""
    return self.call_sublayer_with_rng(i, inputs, weights, state, sublayer_rng(rng, i))

  def call_sublayer_with_rng(self, i, inputs, weights, state, sublayer_rng_i):
    """call_sublayer with sublayer i's own rng given (`sublayer_rng(rng, i)`, e.g. scanned)."""
    try:
      return self._sublayers[i].apply(inputs, weights, state, sublayer_rng_i)
    except LayerError as e:
      e.prepend(self._name, i)
      raise

  def init_sublayer(self, i, input_signature, rng):
    """init_with_signature of sublayer i (with its own rng), adding this layer to error paths."""
    try:
      return self._sublayers[i].init_guarded(input_signature, sublayer_rng(rng, i))
    except LayerError as e:
      e.prepend(self._name, i)
      raise

  def arity_note(self):
    """Extra words for arity errors (combinators explain where their n_in comes from)."""
    return ''

  # ----- public pure API -----
  def init(self, input_signature, rng=None):
    """Returns (weights, state) for inputs like `input_signature`; stores nothing.

    `input_signature`: a ShapeDtype, an array, or a tuple of those (one per input).
    """
    if rng is None:
      rng = jax.random.key(0)
    sig = shapes.signature(input_signature)
    weights, state, _ = self.init_guarded(sig, rng)
    return self._compress(weights), self._compress(state)

  def pure_fn(self, inputs, weights, state, rng=None):
    """Returns (outputs, new_state); pure, so safe under jit, grad and vmap."""
    shared = self._shared()
    if shared:
      weights = self._expand(weights, shared)
      state = self._expand(state, shared)
    outputs, new_state = self.apply(_as_stack_input(inputs, self._n_in), weights, state, rng)
    return outputs, self._compress(new_state)

  def output_signature(self, input_signature):
    """The ShapeDtype(s) of this layer's outputs, computed without running it."""
    sig = shapes.signature(input_signature)
    result = {}
    def build():
      weights, state, out = self.init_guarded(sig, jax.random.key(0))
      result['out'] = out
      return weights, state
    jax.eval_shape(build)
    return result['out']

  # ----- notebook sugar -----
  def __call__(self, inputs, weights=None, state=None, rng=None):
    """Runs the layer on concrete inputs with remembered (or given) weights.

    On first use (nothing remembered), initializes from the inputs' signature with rng 0
    and remembers the result. Updates the remembered state.
    """
    if weights is None or state is None:
      if self._cache is None:
        self._cache = self.init(shapes.signature(inputs))
      weights = self._cache[0] if weights is None else weights
      state = self._cache[1] if state is None else state
    outputs, new_state = self.pure_fn(inputs, weights, state, rng)
    if self._cache is not None:
      self._cache = (self._cache[0], new_state)
    return outputs

  @property
  def weights(self):
    if self._cache is None:
      raise ValueError(f'{self._name} has no remembered weights: call layer(x) once, or set '
                       'layer.weights = weights (init returns them and stores nothing).')
    return self._cache[0]

  @weights.setter
  def weights(self, value):
    self._cache = (value, self._cache[1] if self._cache else ())

  @property
  def state(self):
    if self._cache is None:
      raise ValueError(f'{self._name} has no remembered state: call layer(x) once, or set '
                       'layer.state = state (init returns it and stores nothing).')
    return self._cache[1]

  @state.setter
  def state(self, value):
    self._cache = (self._cache[0] if self._cache else (), value)

  # ----- weight sharing -----
  def _shared(self):
    """[(duplicate_path, first_path)] for sublayer instances used more than once."""
    if self._shared_paths is None:
      seen, dups = {}, []
      def walk(layer, path):
        if id(layer) in seen:
          dups.append((path, seen[id(layer)]))
          return
        seen[id(layer)] = path
        for i, sub in enumerate(layer.sublayers):
          walk(sub, path + (i,))
      walk(self, ())
      self._shared_paths = tuple(dups)
    return self._shared_paths

  def _expand(self, tree, shared):
    for dup, first in shared:
      tree = _set_at(tree, dup, _get_at(tree, first))
    return tree

  def _compress(self, tree):
    for dup, _ in self._shared():
      tree = _set_at(tree, dup, ())
    return tree


class PureLayer(Layer):
  """A weightless layer from a function of its inputs (one array or a tuple of n_in)."""

  def __init__(self, forward_fn, n_in=1, n_out=1, name='PureLayer'):
    super().__init__(n_in=n_in, n_out=n_out, name=name)
    self._forward_fn = forward_fn

  def forward(self, inputs, weights, state, rng):
    del weights, rng
    return self._forward_fn(inputs), state


class Fn(Layer):
  """A weightless layer from a function of n_in positional arrays.

  n_in is read from `f`'s signature.

    >>> Add = Fn('Add', lambda x, y: x + y)   # n_in=2, n_out=1
  """

  def __init__(self, name, f, n_out=1):
    import inspect  # pylint: disable=g-import-not-at-top
    params = inspect.signature(f).parameters.values()
    for p in params:
      if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
        raise ValueError(f'Fn {name}: function may not take *args or **kwargs; '
                         'give it one parameter per input.')
      if p.kind == p.KEYWORD_ONLY and p.default is p.empty:
        raise ValueError(f'Fn {name}: keyword-only parameter {p.name!r} has no default, but '
                         'Fn passes inputs by position; make it positional (an input) or give '
                         'it a default (a setting, e.g. functools.partial).')
    n_in = sum(1 for p in params if p.default is p.empty and p.kind != p.KEYWORD_ONLY)
    super().__init__(n_in=n_in, n_out=n_out, name=name)
    self._f = f

  def forward(self, inputs, weights, state, rng):
    del weights, rng
    args = inputs if self.n_in != 1 else (inputs,)
    outputs = self._f(*args)
    if self.n_out != 1 and (not isinstance(outputs, (tuple, list)) or len(outputs) != self.n_out):
      raise ValueError(f'Fn {self.name} declared n_out={self.n_out} but its function returned '
                       f'{shapes.describe(outputs)}')
    return (tuple(outputs) if self.n_out != 1 else outputs), state


def sublayer_rng(rng, i):
  """Deterministic per-sublayer rng: fold_in by position (None stays None)."""
  return None if rng is None else jax.random.fold_in(rng, i)


def _as_stack_input(inputs, n_in):
  if n_in != 1 and isinstance(inputs, list):
    return tuple(inputs)
  return inputs


def _get_at(tree, path):
  for i in path:
    tree = tree[i]
  return tree


def _set_at(tree, path, value):
  if not path:
    return value
  i = path[0]
  items = list(tree)
  items[i] = _set_at(items[i], path[1:], value)
  return tuple(items)


def _indent(text):
  return '\n'.join('  ' + line for line in text.splitlines())


def walk_layers(layer):
  """Yields `layer` and every layer under it, depth first (a shared one each time it is used).

    >>> [l.name for l in walk_layers(tl.Serial(tl.Dense(4), tl.Relu()))]
    ['Serial', 'Dense_4', 'Relu']
  """
  yield layer
  for sub in layer.sublayers:
    yield from walk_layers(sub)


def count_params(weights):
  return sum(int(np.prod(np.shape(x))) for x in jax.tree_util.tree_leaves(weights))


def summary(layer, input_signature, rng=None, print_fn=print):
  """Prints (and returns) the layer tree with parameter counts and output shapes."""
  weights_shape = jax.eval_shape(lambda: layer.init_guarded(
      shapes.signature(input_signature), jax.random.key(0) if rng is None else rng)[0])
  lines = []
  def walk(l, w, depth):
    n = count_params(w)
    lines.append(f'{"  " * depth}{l.name:<{max(1, 40 - 2 * depth)}} {n:>12,d}')
    for i, sub in enumerate(l.sublayers):
      walk(sub, w[i] if isinstance(w, tuple) and i < len(w) else (), depth + 1)
  walk(layer, weights_shape, 0)
  shared = layer._shared()  # pylint: disable=protected-access
  total = count_params(layer._compress(weights_shape))  # pylint: disable=protected-access
  lines.append(f'Total parameters: {total:,d}' + (f' ({len(shared)} shared sublayer uses)' if shared else ''))
  text = '\n'.join(lines)
  if print_fn:
    print_fn(text)
  return text
