"""`plait-decode`: sample text from a trained run (its config.gin, checkpoint and tokenizer).

  plait-decode --output_dir=/tmp/run --prompt="It was a" --max_length=200 \\
      --temperature=0.8 [--top_k=40] [--top_p=0.9] [--seed=0] [--step=N]

Reads `output_dir/config.gin` (written by plait-train; `train.model = @SomeLM`), builds
that model in predict mode, loads the weights of the latest (or --step) checkpoint, and
encodes/decodes text with the tokenizer saved next to the checkpoints. Exit status 1 with
a message when output_dir has no checkpoint, config or tokenizer.
"""
import argparse
import os
import sys

CONFIG_FILE = 'config.gin'


class DecodeError(ValueError):
  """Something decode needs is missing from output_dir."""


def load_model_factory(output_dir):
  """The configured model function of the run (bindings of config.gin applied)."""
  import gin  # pylint: disable=g-import-not-at-top
  from plait import configurables  # pylint: disable=g-import-not-at-top
  from plait.supervised import trainer  # pylint: disable=g-import-not-at-top,unused-import
  path = os.path.join(output_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise DecodeError(f'{path} not found: is {output_dir} a plait-train output directory?')
  configurables.register_all()
  gin.clear_config()
  gin.parse_config_file(path, skip_unknown=True)
  try:
    reference = gin.query_parameter('train.model')
  except ValueError as e:
    raise DecodeError(f'{path} does not bind train.model (e.g. train.model = @ReformerLM).') from e
  return getattr(reference, 'scoped_configurable_fn', reference)


def load_tokenizer(output_dir):
  from plait.data.tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  from plait.supervised import checkpoints  # pylint: disable=g-import-not-at-top
  directory = checkpoints.tokenizer_dir(output_dir)
  if directory is None:
    raise DecodeError(f'no tokenizer saved in {output_dir} (expected {output_dir}/'
                      f'{checkpoints.TOKENIZER_DIR}/ from plait-train).')
  return Tokenizer.load(directory)


def decode(output_dir, prompt='', max_length=100, temperature=1.0, top_k=None, top_p=None,
           seed=0, step=None):
  """Returns the generated text (without the prompt)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from plait.supervised import decoding  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  factory = load_model_factory(output_dir)
  try:
    eval_model, model = factory(mode='eval'), factory(mode='predict')
  finally:
    gin.clear_config()  # Leave no bindings behind for the caller.
  weights, _ = decoding.restore_weights(output_dir, eval_model, step=step)
  tokenizer = load_tokenizer(output_dir)
  prompt_ids = np.asarray(tokenizer.encode(prompt), np.int32)[None, :]
  ids = decoding.autoregressive_sample(
      model, prompt_ids, temperature=temperature, top_k=top_k, top_p=top_p,
      max_length=max_length, eos_id=getattr(tokenizer, 'eos_id', None),
      rng=jax.random.key(seed), weights=weights, vocab_size=tokenizer.vocab_size)
  return tokenizer.decode(ids[0])


def main(argv=None):
  parser = argparse.ArgumentParser(prog='plait-decode', description=__doc__.split('\n')[0])
  parser.add_argument('--output_dir', required=True, help='a plait-train output directory')
  parser.add_argument('--prompt', default='', help='text to continue')
  parser.add_argument('--max_length', type=int, default=100, help='tokens to generate')
  parser.add_argument('--temperature', type=float, default=1.0, help='0 = greedy')
  parser.add_argument('--top_k', type=int, default=None)
  parser.add_argument('--top_p', type=float, default=None)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--step', type=int, default=None, help='checkpoint step (default latest)')
  args = parser.parse_args(argv)
  try:
    text = decode(args.output_dir, args.prompt, args.max_length, args.temperature, args.top_k,
                  args.top_p, args.seed, args.step)
  except (ValueError, FileNotFoundError) as e:  # CheckpointError and DecodeError included.
    print(f'plait-decode: {e}', file=sys.stderr)
    return 1
  print(args.prompt + text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
