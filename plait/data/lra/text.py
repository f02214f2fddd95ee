"""LRA Text: IMDb movie reviews as bytes, positive or negative (Tay et al. 2020).

Read from TFDS's array_record files without TensorFlow (prepare once, see docs/lra.md). As in
LRA, IMDb has no validation set, so 'validation' and 'test' are both its 25,000 test reviews;
'train' its 25,000 training reviews. Byte b of a review is token b + 1 (vocab 257, 0 is
padding); reviews are cut to max_length bytes (LRA: 4000) and zero-padded to it.

    make = plait.data.lra.lra_text_inputs(split='train', batch_size=32, data_dir=DIR)
    inputs, targets, weights = next(make())   # int32 (32, 4000), int32 (32,), float32 (32,)
"""
from plait.data.lra.common import LRAInputs, Mapped, as_bytes, check_bucket_lengths, check_int
from plait.data.lra.common import check_split, example, open_tfds, pad_bytes

VOCAB_SIZE = 257
N_CLASSES = 2
MAX_LENGTH = 4000
TFDS_NAME = 'imdb_reviews'
TFDS_SPLITS = {'train': 'train', 'validation': 'test', 'test': 'test'}
SPLIT_SIZES = {'train': 25_000, 'validation': 25_000, 'test': 25_000}


class _Review:

  def __init__(self, max_length):
    self.max_length = max_length

  def __call__(self, record):
    return example(pad_bytes(as_bytes(record['text']), self.max_length), int(record['label']))


def lra_text_inputs(split='train', batch_size=32, seed=0, max_length=MAX_LENGTH, data_dir=None,
                    bucket_lengths=None):
  """Batches of LRA Text, byte-level IMDb (gin-configurable); needs the prepared TFDS data.

  Args:
    split: 'train' (25,000, reshuffled every epoch), 'validation' or 'test' (both IMDb's
      25,000 test reviews, as in LRA, in a fixed order); every split repeats forever.
    batch_size: examples per batch.
    seed: non-negative seed of the training order.
    max_length: bytes kept per review, and the padded length (LRA: 4000; its paper says 4K).
    data_dir: TFDS data_dir holding imdb_reviews in array_record format (None: TFDS's default).
    bucket_lengths: None, or increasing lengths ending at max_length, e.g. (1024, 2048, 4000):
      training batches group reviews of similar length, each padded to the first length that
      holds them (docs/lra.md, "Bucketing"). Training split only.

  Returns:
    An `LRAInputs`: call it for a resumable Pipeline of (inputs int32 (B, max_length), or
    (B, L) with L in bucket_lengths, byte ids 1..256 and 0 padding, targets int32 (B,) in
    {0, 1}, weights float32 (B,) ones).

  Raises:
    FileNotFoundError: the data is not prepared; the message says how to prepare it.
  """
  name = 'lra_text_inputs'
  split = check_split(name, split)
  batch_size = check_int(name, 'batch_size', batch_size)
  seed = check_int(name, 'seed', seed, low=0)
  max_length = check_int(name, 'max_length', max_length)
  bucket_lengths = check_bucket_lengths(name, split, bucket_lengths, max_length)
  records = open_tfds(name, TFDS_NAME, TFDS_SPLITS[split], data_dir)
  return LRAInputs('text', Mapped(records, _Review(max_length)), split, batch_size, seed,
                   VOCAB_SIZE, N_CLASSES, max_length, bucket_lengths)
