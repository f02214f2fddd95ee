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
Generated on the fly, 500-700 examples/s on one core.

Token ids (VOCAB_SIZE = 16): 0 = padding, 1..10 = digits 0..9, 11 = '[MIN', 12 = '[MAX',
13 = '[MED', 14 = '[SM', 15 = ']'. `TOKENS[id]` is the text of an id.

    make = plait.data.lra.lra_listops_inputs(split='train', batch_size=32, seed=0)
    inputs, targets, weights = next(make())   # int32 (32, 2000), int32 (32,), float32 (32,)
"""
import numpy as np

from plait.data.lra.common import GeneratedExamples, LRAInputs, Uniforms, check_bucket_lengths
from plait.data.lra.common import check_int, check_split, make_split

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

_CLOSE = 15            # ids: digit d is d + 1, OPERATORS[k] is 11 + k
_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}
GENERATOR_VERSION = 1   # in cached splits' names: change it with anything that changes an example


def _median(values):
  ordered, n = sorted(values), len(values)
  return (ordered[(n - 1) // 2] + ordered[n // 2]) // 2  # int(np.median(values)), as LRA


_APPLY = (min, max, _median, lambda values: sum(values) % 10)  # in OPERATORS order


def listops_expression(rng, min_length=MIN_LENGTH, max_length=MAX_LENGTH):
  """One random expression with min_length < len < max_length: (int32 token ids, int value).

  Trees are grown depth-first from `rng`, evaluating each operator as its bracket closes; a
  tree is abandoned as soon as its tokens plus the brackets still open reach max_length, and
  drawn again until one fits, so the result is a pure function of the generator's state.
  """
  uniform = Uniforms(rng)
  while True:
    op = int(uniform() * len(OPERATORS))
    tokens = [11 + op]
    open_ops = [[op, 2 + int(uniform() * (MAX_ARGS - 1)), []]]  # operator, args to draw, values
    value = None
    while open_ops:
      node = open_ops[-1]
      if not node[1]:  # all arguments drawn: close and evaluate
        open_ops.pop()
        tokens.append(_CLOSE)
        result = _APPLY[node[0]](node[2])
        if open_ops:
          open_ops[-1][2].append(result)
        else:
          value = result
        continue
      node[1] -= 1
      if len(open_ops) < MAX_DEPTH - 1 and uniform() < OPERATOR_PROBABILITY:  # child depth < 10
        op = int(uniform() * len(OPERATORS))
        tokens.append(11 + op)
        open_ops.append([op, 2 + int(uniform() * (MAX_ARGS - 1)), []])
      else:
        digit = int(uniform() * 10)
        tokens.append(1 + digit)
        node[2].append(digit)
      if len(tokens) + len(open_ops) >= max_length:
        break  # too long already
    if value is not None and len(tokens) > min_length:
      return np.array(tokens, np.int32), value


def listops_text(ids):
  """Token ids -> the expression as text (padding dropped), e.g. '[MAX 2 9 ]'."""
  return ' '.join(TOKENS[int(i)] for i in np.asarray(ids).ravel() if i)


class ListOpsExamples(GeneratedExamples):
  """The examples of one split: item i is `(tokens padded to max_length, label, 1.0)`."""

  def __init__(self, split, seed, n_examples, min_length, max_length):
    self.split, self.seed, self.n_examples = split, seed, n_examples
    self.min_length, self.max_length, self.length = min_length, max_length, max_length

  def generate(self, i):
    rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], int(i)])
    tokens, value = listops_expression(rng, self.min_length, self.max_length)
    return np.pad(tokens, (0, self.max_length - len(tokens))), value

  def cache_name(self):
    return (f'listops_{self.split}_seed{self.seed}_n{self.n_examples}_len{self.min_length}-'
            f'{self.max_length}_v{GENERATOR_VERSION}')


def lra_listops_inputs(split='train', batch_size=32, seed=0, max_length=MAX_LENGTH,
                       min_length=MIN_LENGTH, n_examples=None, workers=0, cache_dir=None,
                       bucket_lengths=None):
  """Batches of LRA ListOps (gin-configurable); generated, so always available.

  Args:
    split: 'train' (96,000 examples, reshuffled every epoch), 'validation' or 'test' (2,000
      each, in a fixed order); every split repeats forever.
    batch_size: examples per batch.
    seed: non-negative data seed: the expressions and the training order.
    max_length: expressions have fewer tokens than this and are zero-padded to it (LRA: 2000).
    min_length: expressions have more tokens than this (LRA: 500).
    n_examples: examples in the split (default: LRA's split size).
    workers: 0 makes examples as the pipeline reads them (500-700/s); N > 0 makes the whole
      split now with N processes. Either way each is made once and kept in memory.
    cache_dir: a directory where the whole split is kept as one compressed file: made once
      (with max(workers, 1) processes) and read back by later calls.
    bucket_lengths: None (LRA: every batch padded to max_length), or increasing lengths ending
      at max_length, e.g. (768, 1024, 1536, 2000): training batches group expressions of
      similar length, each batch padded to the first length that holds them (with these
      four, 61 % of the tokens of LRA's batches; docs/lra.md, "Bucketing"). Training only.

  Returns:
    An `LRAInputs`: call it for a resumable Pipeline of (inputs int32 (B, max_length), or
    (B, L) with L in bucket_lengths, targets int32 (B,) in 0..9, weights float32 (B,) ones).
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
  workers = check_int(name, 'workers', workers, low=0)
  bucket_lengths = check_bucket_lengths(name, split, bucket_lengths, max_length)
  examples = make_split(name, ListOpsExamples(split, seed, n_examples, min_length, max_length),
                        workers, cache_dir)
  return LRAInputs('listops', examples, split, batch_size, seed, VOCAB_SIZE, N_CLASSES,
                   max_length, bucket_lengths)
