"""A PNG of the loss curves of a training run: `python -m plait.supervised.plot OUTPUT_DIR`.

Reads `OUTPUT_DIR/metrics.jsonl` and draws the `loss` of every split (train and each eval
task) against the step, in one figure. Eval records of runs saved before the held-out loss
was named `loss` have their metrics named like a loss drawn instead (e.g. CrossEntropyLoss).

  >>> plot_metrics('/tmp/run')        # writes /tmp/run/loss.png
"""
import argparse
import os
import sys

from plait.supervised import metrics_log

PLOT_FILE = 'loss.png'


def plot_metrics(output_dir, path=None):
  """Writes the loss-curve PNG (default `output_dir/loss.png`) and returns its path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  records = metrics_log.read_metrics(output_dir)
  if not records:
    raise ValueError(f'plot: no metrics in {os.path.join(output_dir, metrics_log.METRICS_FILE)}'
                     '; train first.')
  curves = {}
  for r in records:
    for key in _loss_keys(r):
      if isinstance(r[key], (int, float)):
        steps, values = curves.setdefault(f"{r['split']}/{key}", ([], []))
        steps.append(r['step'])
        values.append(r[key])
  fig, ax = plt.subplots(figsize=(8, 5))
  for name, (steps, values) in sorted(curves.items()):
    ax.plot(steps, values, label=name, marker='o' if len(steps) < 30 else None)
  ax.set_xlabel('step')
  ax.set_ylabel('loss')
  ax.set_title(os.path.basename(os.path.abspath(output_dir)))
  ax.grid(True, alpha=0.3)
  ax.legend()
  path = path or os.path.join(output_dir, PLOT_FILE)
  fig.savefig(path, dpi=100, bbox_inches='tight')
  plt.close(fig)
  return path


def _loss_keys(record):
  """The keys of a record's loss values: 'loss', or in an eval record of an older run, the
  metrics named like a loss."""
  if metrics_log.LOSS in record:
    return [metrics_log.LOSS]
  if record.get('split') == 'train':
    return []
  return [k for k in record if k not in ('split', 'step')
          and any(w in k.lower() for w in ('loss', 'entropy'))]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('output_dir', help='a training directory with metrics.jsonl')
  parser.add_argument('--out', default=None, help='PNG path (default OUTPUT_DIR/loss.png)')
  args = parser.parse_args(argv)
  try:
    print(plot_metrics(args.output_dir, args.out))
  except ValueError as e:
    print(f'plait-plot: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
