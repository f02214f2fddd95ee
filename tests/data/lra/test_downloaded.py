"""LRA Image, Text and Retrieval on small data made here in their formats; missing data errors."""
import numpy as np
import pytest

from plait.data import lra
from plait.data.lra import image
from plait.data.lra import retrieval

tfds = pytest.importorskip('tensorflow_datasets')


def test_image_is_gray_cifar_pixels_in_raster_order():
  with tfds.testing.mock_data(num_examples=6):
    make = lra.lra_image_inputs(split='validation', batch_size=3)
    inputs, targets, weights = next(make())
    record = make.examples.data[0]
  assert inputs.shape == (3, 1024) and inputs.dtype == np.int32
  assert targets.shape == (3,) and targets.dtype == np.int32 and weights.dtype == np.float32
  rgb = record['image'].astype(np.float64)
  expected = np.floor(rgb @ [0.2989, 0.5870, 0.1140] / 255 * 255.5).reshape(-1)
  assert np.abs(inputs[0] - expected).max() <= 1  # float32 vs float64 rounding at most
  assert targets[0] == int(record['label'])
  assert (make.vocab_size, make.n_classes, make.max_length) == (256, 10, 1024)


def test_grayscale_of_pure_colours_and_white():
  rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]], np.uint8)
  np.testing.assert_array_equal(image.to_grayscale(rgb), [76, 149, 29, 255, 0])


def test_text_is_bytes_plus_one_cut_and_padded():
  with tfds.testing.mock_data(num_examples=4):
    make = lra.lra_text_inputs(split='test', batch_size=2, max_length=8)
    inputs, targets, _ = next(make())
    record = make.examples.data[0]
  review = record['text'].encode() if isinstance(record['text'], str) else record['text']
  expected = np.zeros(8, np.int32)
  expected[:min(8, len(review))] = np.frombuffer(review[:8], np.uint8) + 1
  np.testing.assert_array_equal(inputs[0], expected)
  assert targets[0] == int(record['label'])
  assert make.vocab_size == 257


def test_text_training_batches_bucket_by_length_and_keep_each_review_whole():
  with tfds.testing.mock_data(num_examples=24):
    plain = lra.lra_text_inputs(split='train', batch_size=2, max_length=64)
    whole = {tuple(t[t > 0]): int(y) for t, y, _ in (plain.examples[i] for i in range(24))}
    stream = lra.lra_text_inputs(split='train', batch_size=2, max_length=64,
                                 bucket_lengths=(12, 16, 64))()   # mock reviews: 10-19 bytes
    batches = [next(stream) for _ in range(8)]
    with pytest.raises(ValueError, match='training split only'):
      lra.lra_text_inputs(split='test', max_length=64, bucket_lengths=(16, 64))
  assert len({inputs.shape[1] for inputs, _, _ in batches}) >= 2
  for inputs, targets, _ in batches:
    lengths = [int(np.count_nonzero(row)) for row in inputs]
    assert inputs.shape[1] == next(b for b in (12, 16, 64) if max(lengths) <= b)
    for row, target in zip(inputs, targets):
      assert whole[tuple(row[row > 0])] == int(target)   # a review kept whole, with its label


def _write_aan(directory, rows):
  directory.mkdir(exist_ok=True)
  for name in retrieval.FILES.values():
    with open(directory / name, 'w', encoding='utf-8') as f:
      for row in rows:
        f.write('\t'.join(row) + '\n')


def test_retrieval_reads_lra_tsv_pairs(tmp_path):
  rows = [('1.0', 'P01', 'P02', "b'A study \\xc3\\xa9'", "b'x'"),
          ('0', 'P03', 'P04', 'plain text', 'other one here'),
          ('1', 'P05', 'P06', "b'long'", "b'\\n\\t'")]
  _write_aan(tmp_path / 'aan', rows)
  make = lra.lra_retrieval_inputs(split='validation', batch_size=3, max_length=10,
                                  data_dir=tmp_path / 'aan')
  inputs, targets, weights = next(make())
  assert inputs.shape == (3, 2, 10) and inputs.dtype == np.int32
  np.testing.assert_array_equal(targets, [1, 0, 1])
  np.testing.assert_array_equal(weights, [1, 1, 1])

  def ids(data):
    out = np.zeros(10, np.int32)
    out[:len(data[:10])] = np.frombuffer(data[:10], np.uint8) + 1
    return out
  np.testing.assert_array_equal(inputs[0, 0], ids('A study é'.encode()))  # literal decoded
  np.testing.assert_array_equal(inputs[0, 1], ids(b'x'))
  np.testing.assert_array_equal(inputs[1, 1], ids(b'other one here'))    # cut to 10
  np.testing.assert_array_equal(inputs[2, 1], ids(b'\n\t'))
  assert (make.vocab_size, make.n_classes, make.max_length) == (257, 2, 10)


def test_retrieval_uses_plait_data_dir_and_is_resumable(tmp_path, monkeypatch):
  rows = [(str(i % 2), 'a', 'b', f"b'doc {i}'", "b'other'") for i in range(7)]
  (tmp_path / 'lra').mkdir()
  _write_aan(tmp_path / 'lra' / 'aan', rows)
  monkeypatch.setenv('PLAIT_DATA_DIR', str(tmp_path))
  make = lra.lra_retrieval_inputs(batch_size=2, max_length=6, seed=3)
  stream = make()
  for _ in range(4):
    next(stream)
  state = stream.get_state()
  expected = next(stream)
  resumed = make()
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)[0], expected[0])
  assert 'retrieval' in lra.available_tasks()


def test_retrieval_bad_lines_are_clear_errors(tmp_path):
  _write_aan(tmp_path, [('1', 'a', 'b', 'only four fields')])
  with pytest.raises(ValueError, match='line 1 .* 4 tab-separated fields'):
    lra.lra_retrieval_inputs(data_dir=tmp_path).examples[0]
  _write_aan(tmp_path, [('yes', 'a', 'b', 'x', 'y')])
  with pytest.raises(ValueError, match="label b'yes'"):
    lra.lra_retrieval_inputs(data_dir=tmp_path).examples[0]


def test_missing_data_names_the_path_and_how_to_prepare(tmp_path, monkeypatch):
  monkeypatch.delenv('PLAIT_DATA_DIR', raising=False)
  with pytest.raises(FileNotFoundError, match='new_aan_pairs.test.tsv does not exist.*tar xzf'):
    lra.lra_retrieval_inputs(split='test', data_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match='no data_dir given and PLAIT_DATA_DIR'):
    lra.lra_retrieval_inputs()
  for fn, name in ((lra.lra_image_inputs, 'cifar10'), (lra.lra_text_inputs, 'imdb_reviews')):
    with pytest.raises(FileNotFoundError,
                       match=f'under {tmp_path}.*tfds build {name} --file_format=array_record'):
      fn(data_dir=str(tmp_path))


def test_available_tasks_lists_generated_tasks_and_prepared_ones(tmp_path, monkeypatch):
  monkeypatch.delenv('PLAIT_DATA_DIR', raising=False)
  assert lra.available_tasks(tfds_data_dir=str(tmp_path)) == ['listops', 'pathfinder']
  with tfds.testing.mock_data(num_examples=2):
    assert lra.available_tasks() == ['listops', 'pathfinder', 'image', 'text']
  assert 'tfds build cifar10' in lra.missing_data('image', tfds_data_dir=str(tmp_path))
  assert lra.missing_data('listops') is None
