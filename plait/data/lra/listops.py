"""LRA ListOps (Nangia & Bowman 2018; Tay et al. 2020): evaluate a long nested list expression.

An expression is a prefix tree over the digits 0-9 with four operators, each written as an
opening token, its 2-10 arguments and a closing bracket:

    [MAX 2 9 [MIN 4 7 ] 0 ]                    -> 9
    [SM [MED 3 1 8 5 ] 6 ]                     -> (median(1,3,5,8) = 4, floor) + 6 mod 10 = 0

MIN, MAX, MED (median of the arguments, the mean of the two middle ones rounded down when
their count is even) and SM (sum mod 10). The label is the value, 10 classes.

The recipe is LRA's: every node below the root is an operator with probability 0.25, else a
leaf (always a leaf at depth 10); an operator takes 2-10 arguments, uniformly; a tree is kept
when 500 < its token count < 2000. (LRA's generator draws the root the same way; we draw the
root as an operator since a lone digit is always rejected: the kept trees are distributed the
same.) 96,000 / 2,000 / 2,000 examples. Unlike LRA's files, example i of a split is a pure
function of (seed, split, i): nothing to download, and the splits are disjoint streams.

Token ids (VOCAB_SIZE = 16): 0 = padding, 1..10 = digits 0..9, 11 = '[MIN', 12 = '[MAX',
13 = '[MED', 14 = '[SM', 15 = ']'. `TOKENS[id]` is the text of an id.

    make = plait.data.lra.lra_listops_inputs(split='train', batch_size=32, seed=0)
    inputs, targets, weights = next(make())   # int32 (32, 2000), int32 (32,), float32 (32,)
"""
import numpy as np

from plait.data.lra.common import LRAInputs, check_int, check_split, example

TOKENS = ('<pad>',) + tuple(str(d) for d in range(10)) + ('[MIN', '[MAX', '[MED', '[SM', ']')
VOCAB_SIZE = len(TOKENS)
N_CLASSES = 10
MAX_LENGTH = 2000
MIN_LENGTH = 500
SPLIT_SIZES = {'train': 96_000, 'validation': 2_000, 'test': 2_000}
OPERATORS = ('MIN', 'MAX', 'MED', 'SM')
OPERATOR_PROBABILITY = 0.25
MAX_DEPTH = 10
MAX_ARGS = 10

_DIGIT_0 = 1          # id of digit d is d + 1
_FIRST_OPERATOR = 11  # id of OPERATORS[k] is 11 + k
_CLOSE = 15
_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}
_TREES_PER_ROUND = 32  # candidate trees grown together (numpy amortizes better in bulk)


def _grow_forest(rng, n_trees, max_length):
  """Grows `n_trees` random trees level by level; returns (levels, token counts, alive).

  levels[d] holds the depth-(d+1) nodes of all trees: dict of arrays tree, is_op, n_args,
  op, digit. The children of the operators of one level are consecutive in the next level,
  in their parents' order. A tree stops growing (alive False) once it has >= max_length tokens.
  """
  levels, tree = [], np.arange(n_trees)
  length = np.zeros(n_trees, np.int64)
  alive = np.ones(n_trees, bool)
  for depth in range(1, MAX_DEPTH + 1):
    n = len(tree)
    if depth == 1:
      is_op = np.ones(n, bool)
    elif depth < MAX_DEPTH:
      is_op = rng.random(n) < OPERATOR_PROBABILITY
    else:
      is_op = np.zeros(n, bool)
    n_args = np.where(is_op, rng.integers(2, MAX_ARGS + 1, n), 0)
    level = {'tree': tree, 'is_op': is_op, 'n_args': n_args,
             'op': rng.integers(0, len(OPERATORS), n), 'digit': rng.integers(0, 10, n)}
    levels.append(level)
    length += np.bincount(tree, weights=1 + is_op, minlength=n_trees).astype(np.int64)
    alive &= length < max_length
    growing = alive[tree] & is_op
    tree = np.repeat(tree[growing], n_args[growing])
    if not len(tree):
      break
  return levels, length, alive


def _one_tree(levels, t):
  """The levels of tree t alone (its nodes in the same order)."""
  out = []
  for level in levels:
    mine = level['tree'] == t
    if not mine.any():
      break
    out.append({k: v[mine] for k, v in level.items() if k != 'tree'})
  return out


def _operator_values(op, n_args, child_values):
  """Values of operator nodes from their children's values (children consecutive, in order)."""
  starts = np.concatenate([[0], np.cumsum(n_args)[:-1]])
  segment = np.repeat(np.arange(len(n_args)), n_args)
  ordered = child_values[np.lexsort((child_values, segment))]
  median = (ordered[starts + (n_args - 1) // 2] + ordered[starts + n_args // 2]) // 2
  return np.choose(op, [np.minimum.reduceat(child_values, starts),
                        np.maximum.reduceat(child_values, starts),
                        median,
                        np.add.reduceat(child_values, starts) % 10])


def _tree_tokens(levels):
  """(int32 prefix-order token ids, value) of one tree given as levels (see `_grow_forest`)."""
  sizes, value_below, size_below = [None] * len(levels), None, None
  for d in reversed(range(len(levels))):
    level = levels[d]
    ops = np.flatnonzero(level['is_op'])
    size = np.where(level['is_op'], 2, 1)
    value = level['digit'].copy()
    if len(ops):
      starts = np.concatenate([[0], np.cumsum(level['n_args'][ops])[:-1]])
      size[ops] += np.add.reduceat(size_below, starts)
      value[ops] = _operator_values(level['op'][ops], level['n_args'][ops], value_below)
    sizes[d], value_below, size_below = size, value, size
  tokens = np.zeros(int(sizes[0][0]), np.int32)
  start = np.zeros(1, np.int64)
  for d, level in enumerate(levels):
    is_op, size = level['is_op'], sizes[d]
    tokens[start] = np.where(is_op, _FIRST_OPERATOR + level['op'], _DIGIT_0 + level['digit'])
    ops = np.flatnonzero(is_op)
    tokens[start[ops] + size[ops] - 1] = _CLOSE
    if d + 1 < len(levels):
      n_args, child_size = level['n_args'][ops], sizes[d + 1]
      before = np.cumsum(child_size) - child_size      # tokens of earlier children, globally
      first = np.concatenate([[0], np.cumsum(n_args)[:-1]])
      start = np.repeat(start[ops] + 1 - before[first], n_args) + before
  return tokens, int(value_below[0])


def listops_expression(rng, min_length=MIN_LENGTH, max_length=MAX_LENGTH):
  """One random expression with min_length < len < max_length: (int32 token ids, int value).

  Trees are grown `_TREES_PER_ROUND` at a time from `rng` until one fits; the first that fits
  is returned, so the result is a pure function of the generator's state.
  """
  while True:
    levels, length, alive = _grow_forest(rng, _TREES_PER_ROUND, max_length)
    fits = np.flatnonzero(alive & (length > min_length))
    if len(fits):
      return _tree_tokens(_one_tree(levels, int(fits[0])))


def listops_text(ids):
  """Token ids -> the expression as text (padding dropped), e.g. '[MAX 2 9 ]'."""
  return ' '.join(TOKENS[int(i)] for i in np.asarray(ids).ravel() if i)


class ListOpsExamples:
  """The examples of one split: item i is `(tokens padded to max_length, label, 1.0)`."""

  def __init__(self, split, seed, n_examples, min_length, max_length):
    self.split, self.seed, self.n_examples = split, seed, n_examples
    self.min_length, self.max_length = min_length, max_length

  def __len__(self):
    return self.n_examples

  def __getitem__(self, i):
    if not 0 <= i < self.n_examples:
      raise IndexError(f'ListOpsExamples: index {i} out of range [0, {self.n_examples}).')
    rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], int(i)])
    tokens, value = listops_expression(rng, self.min_length, self.max_length)
    return example(np.pad(tokens, (0, self.max_length - len(tokens))), value)


def lra_listops_inputs(split='train', batch_size=32, seed=0, max_length=MAX_LENGTH,
                       min_length=MIN_LENGTH, n_examples=None):
  """Batches of LRA ListOps (gin-configurable); generated, so always available.

  Args:
    split: 'train' (96,000 examples, reshuffled every epoch), 'validation' or 'test' (2,000
      each, in a fixed order); every split repeats forever.
    batch_size: examples per batch.
    seed: non-negative data seed: the expressions and the training order.
    max_length: expressions have fewer tokens than this and are zero-padded to it (LRA: 2000).
    min_length: expressions have more tokens than this (LRA: 500).
    n_examples: examples in the split (default: LRA's split size).

  Returns:
    An `LRAInputs`: call it for a resumable Pipeline of (inputs int32 (B, max_length),
    targets int32 (B,) in 0..9, weights float32 (B,) ones).
  """
  name = 'lra_listops_inputs'
  split = check_split(name, split)
  batch_size = check_int(name, 'batch_size', batch_size)
  seed = check_int(name, 'seed', seed, low=0)
  max_length = check_int(name, 'max_length', max_length, low=8)
  min_length = check_int(name, 'min_length', min_length, low=0)
  if min_length + 1 >= max_length:
    raise ValueError(f'{name}: need min_length + 1 < max_length (lengths are strictly between), '
                     f'got min_length={min_length}, max_length={max_length}.')
  n_examples = check_int(name, 'n_examples',
                         SPLIT_SIZES[split] if n_examples is None else n_examples)
  examples = ListOpsExamples(split, seed, n_examples, min_length, max_length)
  return LRAInputs('listops', examples, split, batch_size, seed, VOCAB_SIZE, N_CLASSES,
                   max_length)
