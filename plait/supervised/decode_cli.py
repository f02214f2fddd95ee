"""`plait-decode`: sample from a trained run (its config.gin, checkpoint and tokenizer).

  plait-decode --output_dir=/tmp/run --prompt="It was a" --max_length=200 \\
      --temperature=0.8 [--top_k=40] [--top_p=0.9] [--seed=0] [--step=N|best]
  plait-decode --output_dir=runs/reformer_imagenet64_tiny --num_samples=4 --output=grid.png
  plait-decode --output_dir=runs/reformer_duplication_tiny --prompt="0 17 5 33" --max_length=4

Reads `output_dir/config.gin` (written by plait-train; `train.model = @SomeLM`), builds
that model in predict mode, loads the weights of the latest checkpoint (or --step=N, or
--step=best: the best by the run's held-out metric, `LoopSettings.keep_best`, e.g.
'eval/loss'). The checkpoint used is printed to stderr. What is sampled
depends on the run:

* text (a tokenizer saved next to the checkpoints): --prompt is text, the continuation is
  printed; prompt characters the tokenizer cannot encode are named in a warning.
* images (an image model, e.g. ImageReformerLM): --num_samples images are sampled pixel by
  pixel (the whole image unless --max_length says fewer; the rest stays black) and written
  as one PNG grid to --output (required).
* token ids (no tokenizer, e.g. the duplication task): --prompt is whitespace-separated
  ids; the prompt and sampled ids are printed, one line per sample.

Exit status 2 for an argument the run cannot honour (--max_length longer than the model's
max_len fits after the prompt: the message names the longest that fits; --output missing
for an image run; prompt ids outside the vocabulary), 1 with a message when output_dir has no
checkpoint or config, or not the --step asked for (the saved steps are listed). `--debug`
shows the traceback instead of the message.
"""
import argparse
import collections
import inspect
import math
import os
import sys

from plait.supervised import arg_types

DEFAULT_MAX_LENGTH = 100


class DecodeError(ValueError):
  """Something decode needs is missing from output_dir."""


class DecodeArgumentError(DecodeError):
  """An argument the run cannot honour (e.g. --max_length beyond the model's max_len)."""


def _load_config(output_dir):
  """Parses the run's config.gin (gin bindings stay set: the caller clears them)."""
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


def load_model_factory(output_dir):
  """The configured model function of the run (bindings of config.gin applied)."""
  return _load_config(output_dir)


def _image_shape(factory):
  """The configured `image_shape` of an image model (None for other models)."""
  import gin  # pylint: disable=g-import-not-at-top
  target = getattr(factory, '__wrapped__', factory)
  try:
    parameter = inspect.signature(target).parameters.get('image_shape')
  except (TypeError, ValueError):
    parameter = None
  if parameter is None:
    return None
  try:
    return tuple(gin.query_parameter(f'{target.__name__}.image_shape'))
  except ValueError:
    return tuple(parameter.default)


def load_tokenizer(output_dir, required=True):
  """The tokenizer saved with the run; None if there is none and not `required`."""
  from plait.data.tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  from plait.supervised import checkpoints  # pylint: disable=g-import-not-at-top
  directory = checkpoints.tokenizer_dir(output_dir)
  if directory is None:
    if not required:
      return None
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
  """(step to load, why: '' or e.g. 'best eval/loss 3.21') for --step."""
  from plait.supervised import checkpoints  # pylint: disable=g-import-not-at-top
  if step == checkpoints.BEST:
    best = checkpoints.best_checkpoint(output_dir)
    return best.step, f'best {best.metric} {best.value:.4g}'
  return step, 'latest' if step is None else ''


def unencodable(tokenizer, text):
  """The distinct characters of `text` that `tokenizer` encodes as its unknown id."""
  from plait.data.tokenizers import UNK_ID  # pylint: disable=g-import-not-at-top
  unk = getattr(tokenizer, 'unk_id', UNK_ID)
  return [c for c in sorted(set(text)) if unk in list(tokenizer.encode(c))]


def _prompt_ids(prompt, tokenizer):
  """(1, n) int32 prompt ids: the tokenizer's encoding, or whitespace-separated ids."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if tokenizer is not None:
    return np.asarray(tokenizer.encode(prompt), np.int32)[None, :]
  try:
    ids = [int(word) for word in prompt.split()]
  except ValueError:
    raise DecodeArgumentError(
        f'--prompt={prompt!r}: this run saved no tokenizer, so the prompt is token ids '
        'separated by spaces, e.g. --prompt="0 17 5 33".') from None
  return np.asarray(ids, np.int32).reshape(1, -1)


def longest_that_fits(model, prompt_length):
  """The most tokens `model`'s predict caches can generate after a prompt (None: no limit)."""
  from plait.supervised import decoding  # pylint: disable=g-import-not-at-top
  capacity = decoding.predict_capacity(model)
  return None if capacity is None else capacity - prompt_length


def _check_max_length(max_length, fits, capacity):
  if fits is not None and fits < 1:
    raise DecodeArgumentError(f'the prompt ({capacity - fits} tokens) leaves no room in the '
                              f"model's max_len={capacity}: shorten it.")
  if fits is not None and max_length > fits:
    raise DecodeArgumentError(
        f"--max_length={max_length} does not fit: the model's max_len is {capacity} and the "
        f'prompt takes {capacity - fits}; the longest that fits is --max_length={fits}.')


def _check_prompt_ids(prompt_ids, model, weights):
  """DecodeArgumentError unless the prompt ids are in the model's (first) Embedding's range."""
  from plait.supervised import batch_checks  # pylint: disable=g-import-not-at-top
  found = batch_checks.first_embedding(model, weights)
  if found is None or not prompt_ids.size:
    return
  name, vocab = found
  if prompt_ids.min() < 0 or prompt_ids.max() >= vocab:
    raise DecodeArgumentError(f'--prompt ids must be in [0, {vocab - 1}] (the model embeds '
                              f'{vocab} ids, {name}); got {prompt_ids[0].tolist()}.')


class Run(collections.namedtuple('Run', 'output_dir kind eval_model model tokenizer image_shape')):
  """A trained run opened for sampling; kind: 'text', 'image' or 'ids' (see the module doc)."""


def open_run(output_dir):
  """The run's models (eval and predict mode), tokenizer and kind, from its config.gin."""
  import gin  # pylint: disable=g-import-not-at-top
  factory = _load_config(output_dir)
  try:
    image_shape = _image_shape(factory)
    eval_model, model = factory(mode='eval'), factory(mode='predict')
  finally:
    gin.clear_config()  # Leave no bindings behind for the caller.
  tokenizer = None if image_shape else load_tokenizer(output_dir, required=False)
  kind = 'image' if image_shape else ('text' if tokenizer is not None else 'ids')
  return Run(output_dir, kind, eval_model, model, tokenizer, image_shape)


def sample(run, prompt='', max_length=None, temperature=1.0, top_k=None, top_p=None, seed=0,
           step=None, num_samples=1, message_fn=None):
  """Samples from an `open_run`: ids (num_samples, n), or uint8 images (N, H, W, C).

  `prompt`: text for a 'text' run, whitespace-separated ids otherwise. `max_length` None:
  100 tokens or as many as fit, or a whole image (pixels not generated stay 0). `message_fn(text)`, if
  given, gets notes (the checkpoint used, warnings). Raises DecodeArgumentError when
  max_length does not fit the model's max_len after the prompt (naming what fits).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from plait.supervised import decoding  # pylint: disable=g-import-not-at-top
  from plait.supervised import checkpoints  # pylint: disable=g-import-not-at-top
  note = message_fn or (lambda text: None)
  step, why = _step_and_reason(run.output_dir, step)
  step = checkpoints.resolve_step(run.output_dir, step, 'plait-decode')  # lists saved steps
  tokenizer = run.tokenizer
  if tokenizer is not None:
    unknown = unencodable(tokenizer, prompt)
    if unknown:
      note(f'warning: the tokenizer cannot encode {", ".join(map(repr, unknown))} in the '
           'prompt; the model sees its unknown id there.')
  prompt_ids = _prompt_ids(prompt, tokenizer)
  fits = longest_that_fits(run.model, prompt_ids.shape[1])
  if max_length is None:   # not asked for: as much as fits, up to 100 tokens (text, ids)
    max_length = fits if run.kind == 'image' else DEFAULT_MAX_LENGTH
    max_length = max_length if fits is None else max(1, min(max_length, fits))
  _check_max_length(max_length, fits, decoding.predict_capacity(run.model))
  weights, step = decoding.restore_weights(run.output_dir, run.eval_model, step=step)
  note(f'using checkpoint {step}' + (f' ({why})' if why else ''))
  _check_prompt_ids(prompt_ids, run.eval_model, weights)
  prompts = np.repeat(prompt_ids, num_samples, axis=0)
  ids = decoding.autoregressive_sample(
      run.model, prompts, temperature=temperature, top_k=top_k, top_p=top_p,
      max_length=max_length, eos_id=getattr(tokenizer, 'eos_id', None), rng=jax.random.key(seed),
      weights=weights, vocab_size=getattr(tokenizer, 'vocab_size', None))
  if run.kind != 'image':
    return ids
  from plait.data import images  # pylint: disable=g-import-not-at-top
  pixels = np.zeros((num_samples, math.prod(run.image_shape)), np.int32)
  generated = np.concatenate([prompts, ids], axis=1)
  pixels[:, :generated.shape[1]] = generated
  return images.tokens_to_images(pixels, run.image_shape)


def decode(output_dir, prompt='', max_length=None, temperature=1.0, top_k=None,
           top_p=None, seed=0, step=None, message_fn=None):
  """Returns the text generated after `prompt` by a text run (see `sample`)."""
  run = open_run(output_dir)
  if run.kind != 'text':
    raise DecodeError(f'no tokenizer saved in {output_dir}: it is an {run.kind} run; sample it '
                      'with plait-decode or `sample(open_run(output_dir))`.')
  ids = sample(run, prompt, max_length, temperature, top_k, top_p, seed, step,
               message_fn=message_fn)
  return run.tokenizer.decode(ids[0])


def write_image_grid(images, path, columns=None):
  """Writes uint8 images (N, H, W, C) as one PNG grid (`columns` per row, default ~sqrt N)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  n, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * height, columns * width, channels), np.uint8)
  for i, image in enumerate(images):
    r, c = divmod(i, columns)
    grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
  Image.fromarray(grid[..., 0] if channels == 1 else grid).save(path, format='PNG')


def _parser():
  parser = argparse.ArgumentParser(prog='plait-decode', description=__doc__.split('\n')[0])
  parser.add_argument('--output_dir', required=True, help='a plait-train output directory')
  parser.add_argument('--prompt', default='',
                      help='text to continue (token ids separated by spaces for a run '
                      'without a tokenizer)')
  parser.add_argument('--max_length', type=arg_types.whole_number(1), default=None,
                      help=f'tokens to generate (>= 1; default {DEFAULT_MAX_LENGTH} or as many '
                      "as fit, or the whole image); at most the model's max_len minus the "
                      'prompt (more is refused, exit 2)')
  parser.add_argument('--temperature', type=arg_types.finite_number(0.0), default=1.0,
                      help='0 = greedy')
  parser.add_argument('--top_k', type=arg_types.whole_number(1), default=None)
  parser.add_argument('--top_p', type=arg_types.finite_number(0.0, 1.0, low_open=True),
                      default=None, help='in (0, 1]')
  parser.add_argument('--seed', type=arg_types.whole_number(0, 2 ** 32 - 1), default=0,
                      help='sampling seed, in [0, 2**32 - 1]')
  parser.add_argument('--num_samples', type=arg_types.whole_number(1, 1024), default=1,
                      help='samples drawn at once (images: the grid holds them all)')
  parser.add_argument('--output', default=None,
                      help='image runs: the PNG file to write the grid of samples to')
  parser.add_argument('--step', type=step_arg, default=None, metavar='N|best',
                      help="checkpoint step, or 'best': the best by the run's keep_best metric "
                           '(e.g. eval/loss; needs LoopSettings.keep_best). '
                           'Default: latest')
  parser.add_argument('--compilation_cache_dir', default=None,
                      help="JAX's persistent compilation cache (default: as plait-train's; "
                      "'none': off)")
  parser.add_argument('--debug', action='store_true',
                      help='show the traceback of an error instead of its one-line message')
  return parser


def main(argv=None):
  args = _parser().parse_args(argv)
  log = lambda text: print(f'plait-decode: {text}', file=sys.stderr)
  try:
    from plait.supervised import compilation_cache  # pylint: disable=g-import-not-at-top
    compilation_cache.enable(args.compilation_cache_dir)
    run = open_run(args.output_dir)
    if run.kind == 'image' and not args.output:
      raise DecodeArgumentError(f'{args.output_dir} is an image run: pass --output=grid.png to '
                                'write the sampled images.')
    result = sample(run, args.prompt, args.max_length, args.temperature, args.top_k,
                    args.top_p, args.seed, args.step, args.num_samples, message_fn=log)
    if run.kind == 'image':
      write_image_grid(result, args.output)
      log(f'wrote {len(result)} image(s) of shape {result.shape[1:]} to {args.output}')
  except (ValueError, OSError) as e:  # CheckpointError, DecodeError, missing files.
    if args.debug:
      raise
    print(f'plait-decode: {e}', file=sys.stderr)
    return 2 if isinstance(e, DecodeArgumentError) else 1
  if run.kind == 'text':
    for row in result:
      print(args.prompt + run.tokenizer.decode(row))
  elif run.kind == 'ids':
    for row in result:
      print(' '.join(str(i) for i in [*args.prompt.split(), *row.tolist()]))
  return 0


if __name__ == '__main__':
  sys.exit(main())
