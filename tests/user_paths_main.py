"""`python tests/user_paths_main.py train|decode ARGS`: plait-train or plait-decode, as users
run them, optionally on mock TFDS data ($PLAIT_TEST_MOCK_TFDS=1: the ImageNet config's
'tfds' source, which needs a download, reads generated images instead)."""
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  which, argv = sys.argv[1], sys.argv[2:]
  if which == 'train':
    from plait.supervised.trainer import main as cli  # pylint: disable=import-outside-toplevel
  else:
    from plait.supervised.decode_cli import main as cli  # pylint: disable=import-outside-toplevel
  context = contextlib.nullcontext()
  if os.environ.get('PLAIT_TEST_MOCK_TFDS'):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    context = tfds.testing.mock_data(num_examples=16)
  with context:
    return cli(argv)


if __name__ == '__main__':
  sys.exit(main())
