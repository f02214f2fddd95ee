"""The README demo: train a tiny ReformerLM on Crime and Punishment, print its train and
held-out loss, then a sample.

  python -m plait.demo [--output_dir=runs/crime_and_punishment_tiny] [--steps=N]

is the same as

  plait-train --config_file=plait/rl_free_configs/reformer_crime_and_punishment_tiny.gin \\
      --output_dir=runs/crime_and_punishment_tiny
  plait-decode --output_dir=runs/crime_and_punishment_tiny --prompt="Raskolnikov "

Like the trainer, it resumes a finished or interrupted run in output_dir (a finished one
just decodes again) and refuses an output_dir trained with another config.

The helpers below rebuild a run's model from its saved config.gin, so notebooks can
decode from a checkpoint in a few lines:

  >>> model, weights, tokenizer = load_run('runs/crime_and_punishment_tiny')
  >>> print(sample('runs/crime_and_punishment_tiny', 'Raskolnikov ', length=200))
"""
import argparse
import os
import sys

CONFIG = 'reformer_crime_and_punishment_tiny'
DEFAULT_OUTPUT_DIR = os.path.join('runs', 'crime_and_punishment_tiny')
DEFAULT_PROMPT = 'Raskolnikov '


def configured_model(mode):
  """The model bound to `train.model` in the parsed gin config, built in `mode`."""
  import gin  # pylint: disable=import-outside-toplevel
  reference = gin.query_parameter('train.model')
  return reference.scoped_configurable_fn(mode=mode)


def configured_signature(binding='train.inputs'):
  """ShapeDtype of one batch's inputs for the parsed config, read from its bindings only.

  Knows `lm_inputs` (batch_size, sequence_length), `image_lm_inputs` (batch_size,
  image_size**2 * 3) and `duplication_inputs` (batch_size, length); no data is read.
  """
  import gin  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from plait.shapes import ShapeDtype  # pylint: disable=import-outside-toplevel
  reference = gin.query_parameter(binding)
  name = reference.selector.rsplit('.', 1)[-1]
  scope = f'{reference.scope}/' if getattr(reference, 'scope', None) else ''
  def query(param):
    for selector in (f'{scope}{name}.{param}', f'{name}.{param}'):
      try:
        return gin.query_parameter(selector)
      except ValueError:
        continue
    raise ValueError(f'configured_signature: the config does not bind {name}.{param}; bind it '
                     'so the batch shape is known without reading data.')
  if name == 'lm_inputs':
    length = query('sequence_length')
  elif name == 'image_lm_inputs':
    length = query('image_size') ** 2 * 3
  elif name == 'duplication_inputs':
    length = query('length')
  else:
    raise ValueError(f'configured_signature: unknown inputs {name!r}; expected lm_inputs, '
                     'image_lm_inputs or duplication_inputs.')
  return ShapeDtype((query('batch_size'), length), jnp.int32)


def load_run(output_dir, step=None):
  """(predict-mode model, weights, tokenizer or None) of a trained run in output_dir.

  Parses output_dir/config.gin, restores the weights saved by plait-train (the weights tree
  is the same in every mode) and loads the tokenizer saved next to the checkpoints.
  """
  import gin  # pylint: disable=import-outside-toplevel
  from plait.data import Tokenizer  # pylint: disable=import-outside-toplevel
  from plait.supervised import checkpoints, run_config, trainer  # pylint: disable=import-outside-toplevel
  config = run_config.read(output_dir)
  if config is None:
    raise ValueError(f'load_run: {os.path.join(output_dir, run_config.CONFIG_FILE)} not found; '
                     f'train first (plait-train --output_dir={output_dir}).')
  gin.clear_config()
  trainer.parse_config([], [config])
  train_model = configured_model('train')
  weights, _, _ = checkpoints.restore_model(output_dir, train_model, configured_signature(),
                                            step=step)
  tokenizer_dir = checkpoints.tokenizer_dir(output_dir)
  tokenizer = Tokenizer.load(tokenizer_dir) if tokenizer_dir else None
  return configured_model('predict'), weights, tokenizer


def decode_ids(tokenizer, ids):
  """Text of `ids`, skipping ids the tokenizer lacks.

  Configs give the model a vocabulary that is an upper bound (e.g. 128 for ~90 characters);
  a trained model gives the unused ids ~0 probability, a barely trained one may not.
  """
  return tokenizer.decode([int(i) for i in ids if 0 <= int(i) < tokenizer.vocab_size])


def sample(output_dir, prompt=DEFAULT_PROMPT, length=300, temperature=0.8, seed=0):
  """Text sampled from the run in output_dir, continuing `prompt` (prompt included)."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from plait.supervised import decoding  # pylint: disable=import-outside-toplevel
  model, weights, tokenizer = load_run(output_dir)
  if tokenizer is None:
    raise ValueError(f'sample: no tokenizer saved in {output_dir}; it is not a text model run.')
  ids = np.asarray([tokenizer.encode(prompt)], np.int32)
  capacity = decoding.predict_capacity(model)
  if capacity is not None:
    length = max(1, min(length, capacity - ids.shape[1] - 1))
  out = decoding.autoregressive_sample(model, ids, temperature=temperature, max_length=length,
                                       rng=jax.random.key(seed), weights=weights)
  return prompt + decode_ids(tokenizer, out[0])


def loss_summary(output_dir, window=50):
  """'step N: train loss T (mean of the last W steps), held-out loss H' from metrics.jsonl.

  The held-out loss is the last evaluation's `loss` (the tiny config evaluates at every
  checkpoint and at the last step). None if the run has no train records yet.
  """
  from plait.supervised import metrics_log  # pylint: disable=import-outside-toplevel
  records = metrics_log.read_metrics(output_dir)
  train = [r for r in records if r.get('split') == 'train' and metrics_log.LOSS in r]
  if not train:
    return None
  last = train[-window:]
  mean = sum(r[metrics_log.LOSS] for r in last) / len(last)
  text = (f"step {train[-1]['step']}: train loss {mean:.4f} (mean of the last {len(last)} "
          'steps)')
  held_out = [r for r in records if r.get('split') not in (None, 'train')
              and metrics_log.LOSS in r]
  if held_out:
    text += f", held-out loss {held_out[-1][metrics_log.LOSS]:.4f} ({held_out[-1]['split']} at "
    text += f"step {held_out[-1]['step']})"
  return text


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m plait.demo',
      description='Train a tiny ReformerLM on Crime and Punishment, then print a sample.')
  parser.add_argument('--output_dir', default=DEFAULT_OUTPUT_DIR)
  parser.add_argument('--steps', type=int, default=None, help='total training steps')
  parser.add_argument('--prompt', default=DEFAULT_PROMPT)
  parser.add_argument('--length', type=int, default=300, help='tokens to sample')
  parser.add_argument('--temperature', type=float, default=0.8)
  args = parser.parse_args(argv)
  from plait import rl_free_configs  # pylint: disable=import-outside-toplevel
  from plait.supervised import trainer  # pylint: disable=import-outside-toplevel
  train_args = [f'--config_file={rl_free_configs.path(CONFIG)}',
                f'--output_dir={args.output_dir}']
  if args.steps is not None:
    train_args.append(f'--steps={args.steps}')
  print(f'plait demo: training {CONFIG} in {args.output_dir} (resumes if already there)')
  code = trainer.main(train_args)
  if code:
    return code
  summary = loss_summary(args.output_dir)
  if summary:
    print(f'\nplait demo: {summary}')
  print(f'\nplait demo: a sample from {args.output_dir}:\n')
  print(sample(args.output_dir, args.prompt, args.length, args.temperature))
  return 0


if __name__ == '__main__':
  sys.exit(main())
