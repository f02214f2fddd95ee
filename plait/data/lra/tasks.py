"""Which LRA tasks can run here: the generated ones always, the downloaded ones once prepared.

    >>> plait.data.lra.available_tasks()
    ['listops', 'pathfinder']          # plus 'image', 'text', 'retrieval' when their data is found
"""
from plait.data.lra import image
from plait.data.lra import retrieval
from plait.data.lra import text

TASKS = ('listops', 'pathfinder', 'image', 'text', 'retrieval')


def missing_data(task, tfds_data_dir=None, aan_dir=None):
  """None if `task`'s data is present (all three splits), else the one-line reason and remedy."""
  if task not in TASKS:
    raise ValueError(f'missing_data: task must be one of {TASKS}, got {task!r}.')
  opener = {'image': lambda s: image.lra_image_inputs(s, data_dir=tfds_data_dir),
            'text': lambda s: text.lra_text_inputs(s, data_dir=tfds_data_dir),
            'retrieval': lambda s: retrieval.lra_retrieval_inputs(s, data_dir=aan_dir)}.get(task)
  if opener is None:
    return None  # generated
  try:
    for split in ('train', 'validation', 'test'):
      opener(split)
  except (FileNotFoundError, ValueError) as e:
    return str(e)
  return None


def available_tasks(tfds_data_dir=None, aan_dir=None):
  """The names in TASKS whose data is present, in that order.

  Args:
    tfds_data_dir: TFDS data_dir with cifar10 and imdb_reviews in array_record format (None:
      TFDS's default, $TFDS_DATA_DIR else ~/tensorflow_datasets).
    aan_dir: directory with LRA's new_aan_pairs.*.tsv (None: $PLAIT_DATA_DIR/lra/aan).
  """
  return [t for t in TASKS if missing_data(t, tfds_data_dir, aan_dir) is None]
