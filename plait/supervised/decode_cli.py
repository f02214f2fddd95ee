"""`plait-decode`: sample text from a trained run (its config.gin, checkpoint and tokenizer).

  plait-decode --output_dir=/tmp/run --prompt="It was a" --max_length=200 \\
      --temperature=0.8 [--top_k=40] [--top_p=0.9] [--seed=0] [--step=N|best]

Reads `output_dir/config.gin` (written by plait-train; `train.model = @SomeLM`), builds
that model in predict mode, loads the weights of the latest checkpoint (or --step=N, or
--step=best: the best by the run's held-out metric, `LoopSettings.keep_best`, e.g.
'eval/CrossEntropyLoss'), and encodes/decodes text with the tokenizer saved next to the
checkpoints. The checkpoint used is printed to stderr. Exit status 1 with a message when
output_dir has no checkpoint, config or tokenizer, or keeps no best checkpoint.
"""
import argparse
import os
import sys

from plait.supervised import arg_types



class DecodeError(ValueError):
  """Something decode needs is missing from output_dir."""


def load_model_factory(output_dir):
  """The configured model function of the run (bindings of config.gin applied)."""
  import gin  # pylint: disable=g-import-not-at-top
  from plait import configurables  # pylint: disable=g-import-not-at-top
  from plait.supervised import trainer  # pylint: disable=g-import-not-at-top,unused-import
  from plait.supervised import run_config  # pylint: disable=g-import-not-at-top
  path = os.path.join(output_dir, run_config.CONFIG_FILE)
  text = run_config.read(output_dir)
  if text is None:
    raise DecodeError(f'{path} not found: is {output_dir} a plait-train output directory?')
  configurables.register_all()
  gin.clear_config()
  gin.parse_config(text, skip_unknown=True)
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


def step_arg(text):
  """argparse type of --step: an integer step or 'best'."""
  if text == 'best':
    return text
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected a checkpoint step (an integer) or 'best', got {text!r}") from None


def _step_and_reason(output_dir, step):
  """(step to load, why: '' or e.g. 'best eval/CrossEntropyLoss 3.21') for --step."""
  from plait.supervised import checkpoints  # pylint: disable=g-import-not-at-top
  if step == checkpoints.BEST:
    best = checkpoints.best_checkpoint(output_dir)
    return best.step, f'best {best.metric} {best.value:.4g}'
  return step, 'latest' if step is None else ''


def decode(output_dir, prompt='', max_length=100, temperature=1.0, top_k=None, top_p=None,
           seed=0, step=None, message_fn=None):
  """Returns the generated text (without the prompt).

  `step`: None (latest), a saved step or 'best'. `message_fn(text)`, if given, is told
  which checkpoint was used.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from plait.supervised import decoding  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  factory = load_model_factory(output_dir)
  try:
    eval_model, model = factory(mode='eval'), factory(mode='predict')
  finally:
    gin.clear_config()  # Leave no bindings behind for the caller.
  step, why = _step_and_reason(output_dir, step)
  weights, step = decoding.restore_weights(output_dir, eval_model, step=step)
  if message_fn is not None:
    message_fn(f'using checkpoint {step}' + (f' ({why})' if why else ''))
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
  parser.add_argument('--max_length', type=arg_types.whole_number(1), default=100,
                      help='tokens to generate (>= 1)')
  parser.add_argument('--temperature', type=arg_types.finite_number(0.0), default=1.0,
                      help='0 = greedy')
  parser.add_argument('--top_k', type=arg_types.whole_number(1), default=None)
  parser.add_argument('--top_p', type=arg_types.finite_number(0.0, 1.0, low_open=True),
                      default=None, help='in (0, 1]')
  parser.add_argument('--seed', type=arg_types.whole_number(0, 2 ** 32 - 1), default=0,
                      help='sampling seed, in [0, 2**32 - 1]')
  parser.add_argument('--step', type=step_arg, default=None, metavar='N|best',
                      help="checkpoint step, or 'best': the best by the run's keep_best metric "
                           '(e.g. eval/CrossEntropyLoss; needs LoopSettings.keep_best). '
                           'Default: latest')
  parser.add_argument('--compilation_cache_dir', default=None,
                      help="JAX's persistent compilation cache (default: as plait-train's; "
                      "'none': off)")
  args = parser.parse_args(argv)
  from plait.supervised import compilation_cache  # pylint: disable=g-import-not-at-top
  log = lambda text: print(f'plait-decode: {text}', file=sys.stderr)
  try:
    compilation_cache.enable(args.compilation_cache_dir)
    text = decode(args.output_dir, args.prompt, args.max_length, args.temperature, args.top_k,
                  args.top_p, args.seed, args.step, message_fn=log)
  except (ValueError, OSError) as e:  # CheckpointError, DecodeError, missing files.
    print(f'plait-decode: {e}', file=sys.stderr)
    return 1
  print(args.prompt + text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
