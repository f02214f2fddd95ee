"""Blocks shared by the models: attention lookup, feed-forward, decoder/encoder blocks, embeddings.

Every model in plait.models is a combinator tree built from these pieces, so a change to
(say) the feed-forward block reaches every model at once.

  >>> block = DecoderBlock(d_model=64, d_ff=256, n_heads=4, attention_type='dense')
  >>> weights, state = block.init(ShapeDtype((2, 16, 64)))
"""
import functools
import inspect

import jax.numpy as jnp

from plait import layers as tl
from plait.layers import initializers

# Attention layers by name, for gin-friendly configs: name -> (causal, bidirectional).
_ATTENTION_NAMES = {
    'dense': (tl.CausalAttention, tl.SelfAttention),
    'chunked': (tl.ChunkedCausalAttention, tl.ChunkedSelfAttention),
    'lsh': (tl.LSHSelfAttention, tl.LSHSelfAttention),
    'favor': (tl.CausalFavorAttention, tl.FavorAttention),
    'block_sparse': (tl.CausalBlockSparseAttention, tl.BlockSparseAttention),
}


def attention_constructor(attention_type, causal):
  """A constructor `f(d_model=, n_heads=, ...) -> Layer` from a name or a callable.

  Names: 'dense', 'chunked', 'lsh', 'favor', 'block_sparse' (the causal layer when
  `causal`, else the bidirectional one). A callable (e.g. `tl.LSHSelfAttention`, or a
  `functools.partial` of one, or a gin-configured reference) is returned as is: for an
  LM it must itself be causal.
  """
  if callable(attention_type):
    return attention_type
  if not isinstance(attention_type, str) or attention_type not in _ATTENTION_NAMES:
    raise ValueError(f'attention_type must be one of {sorted(_ATTENTION_NAMES)} or a layer '
                     f'constructor such as plait.layers.SelfAttention, got {attention_type!r}.')
  constructor = _ATTENTION_NAMES[attention_type][0 if causal else 1]
  if attention_type == 'lsh':
    constructor = functools.partial(constructor, causal=causal)
  return constructor


def attention_types_per_layer(attention_type, n_layers):
  """The attention type of each of n_layers layers: a list is cycled, a single type repeated."""
  if isinstance(attention_type, (list, tuple)):
    if not attention_type:
      raise ValueError('attention_type is an empty list; give at least one type.')
    return [attention_type[i % len(attention_type)] for i in range(n_layers)]
  return [attention_type] * n_layers


# The models' `positional` values: additive encodings (plait.layers.PositionalEncoding's
# kinds) or 'rotary' (none added; every attention layer rotates its q and k instead).
POSITIONALS = ('sinusoidal', 'octave', 'learned', 'rotary')


def check_positional(positional, owner):
  """Raises a ValueError naming `owner` unless `positional` is one of POSITIONALS."""
  if positional not in POSITIONALS:
    raise ValueError(f'{owner}: positional must be one of {POSITIONALS}, got {positional!r}.')


def make_attention(attention_type, causal, rotary=False, **kwargs):
  """Builds one attention layer, passing only the keyword arguments its constructor takes.

  So `max_len` reaches layers with a predict-mode cache and is skipped for those without.
  rotary=True is passed as `rotary=True` and must be taken (a TypeError otherwise: a layer
  without positions would silently see none).
  """
  constructor = attention_constructor(attention_type, causal)
  if rotary:
    kwargs['rotary'] = True
  try:
    params = inspect.signature(constructor).parameters
  except (TypeError, ValueError):  # Builtins without a signature: pass everything.
    return constructor(**kwargs)
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return constructor(**kwargs)
  missing = [k for k in ('d_model', 'mode') if k not in params]
  if missing:
    raise TypeError(f'attention constructor {constructor!r} must take {missing} as keyword '
                    'arguments (like plait.layers.SelfAttention).')
  if rotary and 'rotary' not in params:
    raise TypeError(f"positional='rotary' rotates q and k inside the attention layers, but "
                    f'attention constructor {constructor!r} takes no `rotary` argument (plait '
                    'attention layers all do).')
  return constructor(**{k: v for k, v in kwargs.items() if k in params})


def FeedForward(d_model, d_ff, dropout=0.0, activation=tl.Gelu, mode='train'):  # pylint: disable=invalid-name
  """Position-wise MLP: Dense(d_ff) -> activation -> Dropout -> Dense(d_model) -> Dropout."""
  return tl.Serial(
      tl.Dense(d_ff), activation(), tl.Dropout(dropout, mode=mode),
      tl.Dense(d_model), tl.Dropout(dropout, mode=mode), name='FeedForward')


def FeedForwardBlock(d_model, d_ff, dropout=0.0, activation=tl.Gelu, ff_chunk_size=0,  # pylint: disable=invalid-name
                     mode='train'):
  """Pre-norm feed-forward: LayerNorm -> FeedForward, optionally over chunks of positions.

  With ff_chunk_size > 0 the (batch * length) positions are processed `ff_chunk_size` at a
  time (Reformer's chunked feed-forward), so only one chunk's d_ff activations are alive.
  """
  body = tl.Serial(tl.LayerNorm(), FeedForward(d_model, d_ff, dropout, activation, mode))
  if not ff_chunk_size:
    return body
  flatten = tl.Fn('FlattenPositions', lambda x: x.reshape((-1, x.shape[-1])))
  return tl.Serial(
      tl.Branch(flatten, None),   # [positions (B*L, d), x]: x is kept only for its shape.
      tl.Chunk(body, ff_chunk_size),
      tl.Fn('UnflattenPositions', lambda y, x: y.reshape(x.shape)),
      name='ChunkedFeedForward')


def DecoderBlock(d_model, d_ff, n_heads, attention_type='dense', dropout=0.0, max_len=2048,  # pylint: disable=invalid-name
                 activation=tl.Gelu, ff_chunk_size=0, mode='train', rotary=False):
  """Pre-norm causal block: x + Attention(LayerNorm(x)), then the same with FeedForward.

  rotary: the attention rotates q and k by position (see plait.layers.Attention).
  """
  attention = make_attention(attention_type, True, rotary, d_model=d_model, n_heads=n_heads,
                             dropout=dropout, max_len=max_len, mode=mode)
  return tl.Serial(
      tl.Residual(tl.LayerNorm(), attention, tl.Dropout(dropout, mode=mode)),
      tl.Residual(FeedForwardBlock(d_model, d_ff, dropout, activation, ff_chunk_size, mode)),
      name='DecoderBlock')


def EncoderBlock(d_model, d_ff, n_heads, attention_type='dense', dropout=0.0, max_len=2048,  # pylint: disable=invalid-name
                 activation=tl.Gelu, mode='train', use_mask=True, rotary=False):
  """Pre-norm bidirectional block on (x, mask) -> (x', mask); mask (B, L) True = token.

  use_mask=False: x -> x' with unmasked attention (inputs without padding).
  rotary: the attention rotates q and k by position (see plait.layers.Attention).
  """
  attention = make_attention(attention_type, False, rotary, d_model=d_model, n_heads=n_heads,
                             dropout=dropout, max_len=max_len, use_mask=use_mask, mode=mode)
  return tl.Serial(
      tl.Residual(tl.LayerNorm(), attention, tl.Dropout(dropout, mode=mode)),  # (x, mask)
      tl.Residual(FeedForwardBlock(d_model, d_ff, dropout, activation, 0, mode)),
      name='EncoderBlock')


def PositionalLayer(max_len, d_model, axial_pos_shape=None, d_axial_pos_embs=None,  # pylint: disable=invalid-name
                    positional='sinusoidal', mode='train', positional_init_std=None):
  """Axial encodings when `axial_pos_shape` is given, else PositionalEncoding(positional);
  None for positional='rotary' (the attention layers rotate q and k instead).

  positional_init_std: the learned table's initial standard deviation (None: the layer's
    1.0; LRA's learned positions start at 0.02); only with positional='learned'.
  """
  check_positional(positional, 'PositionalLayer')
  if positional == 'rotary' and axial_pos_shape is not None:
    raise ValueError("positional='rotary' adds no encodings, so it takes no axial_pos_shape "
                     f'(got {tuple(axial_pos_shape)}); use one or the other.')
  if positional_init_std is not None:
    if axial_pos_shape is not None or positional != 'learned':
      got = 'axial positions' if axial_pos_shape is not None else f'positional={positional!r}'
      raise ValueError(f'positional_init_std={positional_init_std!r} sets the initial std of '
                       f"learned positions (positional='learned'); got {got}.")
    if (isinstance(positional_init_std, bool)
        or not isinstance(positional_init_std, (int, float)) or not positional_init_std > 0):
      raise ValueError('positional_init_std must be a number > 0, got '
                       f'{positional_init_std!r}.')
    return tl.PositionalEncoding(max_len, kind='learned', mode=mode,
                                 initializer=initializers.normal(float(positional_init_std)))
  if axial_pos_shape is not None:
    axial_pos_shape = tuple(axial_pos_shape)
    if d_axial_pos_embs is None:
      raise ValueError('axial_pos_shape needs d_axial_pos_embs (one size per axis, summing '
                       f'to d_model={d_model}).')
    if sum(d_axial_pos_embs) != d_model:
      raise ValueError(f'd_axial_pos_embs={tuple(d_axial_pos_embs)} must sum to '
                       f'd_model={d_model}.')
    return tl.AxialPositionalEncoding(axial_pos_shape, tuple(d_axial_pos_embs), mode=mode)
  if positional == 'rotary':
    return None
  return tl.PositionalEncoding(max_len, kind=positional, mode=mode)


def EmbeddingStack(vocab_size, d_model, max_len, dropout=0.0, axial_pos_shape=None,  # pylint: disable=invalid-name
                   d_axial_pos_embs=None, positional='sinusoidal', mode='train',
                   positional_init_std=None):
  """Token ids (B, L) -> Embedding -> Dropout -> positional encodings: (B, L, d_model).

  With positional='rotary' nothing is added here (the blocks' attention rotates q and k).
  """
  positions = PositionalLayer(max_len, d_model, axial_pos_shape, d_axial_pos_embs, positional,
                              mode, positional_init_std)
  return tl.Serial(
      tl.Embedding(vocab_size, d_model), tl.Dropout(dropout, mode=mode),
      [] if positions is None else positions,
      name='EmbeddingStack')


def PaddingMask(pad_id=0):  # pylint: disable=invalid-name
  """Token ids (B, L) -> bool mask (B, L), True where the token is not `pad_id`."""
  return tl.Fn('PaddingMask', lambda tokens: tokens != pad_id)


def MaskedMean():  # pylint: disable=invalid-name
  """(x (B, L, d), mask (B, L)) -> (B, d): the mean over real (mask True) positions."""
  def mean(x, mask):
    m = mask.astype(x.dtype)[..., None]
    return jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
  return tl.Fn('MaskedMean', mean)


