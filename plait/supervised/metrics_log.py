"""Where training metrics go: `metrics.jsonl`, TensorBoard event files and the terminal.

`metrics.jsonl` has one JSON object per line, e.g.
  {"split": "train", "step": 12, "loss": 3.21, "learning_rate": 0.001, ...}
  {"split": "eval", "step": 100, "loss": 3.05, "Accuracy": 0.31}
TensorBoard event files are in `tensorboard/train` and `tensorboard/<eval task>`. The loss
has one name, `loss`, in train and eval records (see `eval_metric_names`), so the curves
overlay in TensorBoard and `plait-plot`.
On a terminal a tqdm bar shows progress; otherwise (logs, CI) plain lines are
printed every `log_every` steps.
"""
import json
import math
import os
import sys
import time

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'
FLUSH_SECONDS = 1.0  # TensorBoard event files are flushed at most this often
LOSS = 'loss'  # the training loss, in train records and (held out) in eval records


def eval_metric_names(metric_layers, metric_names, loss_layer, task_name='eval'):
  """The names an EvalTask's metrics are recorded under.

  A metric computed by a layer named like the training loss layer, and left under that
  name, is recorded as 'loss', as in the train records; the others keep their names:

    >>> eval_metric_names([CrossEntropyLoss(), Accuracy()], ['CrossEntropyLoss', 'Accuracy'],
    ...                   CrossEntropyLoss())
    ['loss', 'Accuracy']

  So a run ranks its best checkpoint by 'eval/loss' whatever its loss layer is. Raises
  ValueError if that gives two metrics the name 'loss'.
  """
  names = [LOSS if name == layer.name == loss_layer.name else name
           for layer, name in zip(metric_layers, metric_names)]
  if names.count(LOSS) > 1:
    raise ValueError(f'EvalTask {task_name!r}: metrics {list(metric_names)} would all be '
                     f'recorded as {LOSS!r} (a metric named like the training loss '
                     f'{loss_layer.name} is recorded as {LOSS!r}); pass other metric_names.')
  return names


def read_metrics(output_dir, warn=None):
  """The intact records of `output_dir/metrics.jsonl`, as a list of dicts.

  A line that is not a JSON object (a write torn by a kill, or junk) is dropped, and
  `warn(text)` (default: a line on stderr) names the file and the line numbers.
  """
  path = os.path.join(output_dir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  records, damaged = [], []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line.decode('utf-8'))
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
      record = None
    if isinstance(record, dict):
      records.append(record)
    else:
      damaged.append(number)
  if damaged:
    shown = ', '.join(str(n) for n in damaged[:5]) + (' ...' if len(damaged) > 5 else '')
    (warn or _warn)(f'{path}: dropped {len(damaged)} damaged line(s) (line {shown}: not a '
                    f'JSON record, e.g. a write cut short by a kill); kept {len(records)} '
                    'records.')
  return records


def _warn(text):
  print(f'plait: warning: {text}', file=sys.stderr, flush=True)


class MetricsWriter:
  """Appends records to metrics.jsonl and TensorBoard.

  On resume from step `resume_step`, records after that step (written by the
  interrupted run after its last checkpoint) are dropped, so the file reads like
  one uninterrupted run. The file is rewritten atomically (a temporary file renamed over
  it), so a kill during the rewrite leaves the old file whole; damaged lines are dropped
  with a warning (see `read_metrics`).
  """

  def __init__(self, output_dir, resume_step=0, tensorboard=True):
    self._dir = output_dir
    self._path = os.path.join(output_dir, METRICS_FILE)
    records = [r for r in read_metrics(output_dir) if r.get('step', 0) <= resume_step]
    tmp = self._path + '.tmp'
    with open(tmp, 'w') as f:
      for r in records:
        f.write(json.dumps(r) + '\n')
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self._path)
    self._file = open(self._path, 'a')  # pylint: disable=consider-using-with
    self._tensorboard = tensorboard
    self._writers = {}

  def write(self, split, step, values):
    record = {'split': split, 'step': int(step)}
    record.update({k: _jsonable(v) for k, v in values.items()})
    try:
      self._file.write(json.dumps(record) + '\n')
      self._file.flush()
    except OSError as e:  # a write error names no file: name it
      raise OSError(e.errno, e.strerror, self._path) from e
    if self._tensorboard:
      self._writer(split).write(step, {k: v for k, v in values.items()
                                       if isinstance(v, (int, float)) and math.isfinite(v)})

  def _writer(self, split):
    if split not in self._writers:
      self._writers[split] = EventFile(os.path.join(self._dir, TENSORBOARD_DIR, split))
    return self._writers[split]

  def flush(self):
    self._file.flush()

  def close(self):
    writers, self._writers = list(self._writers.values()), {}
    try:
      self._file.close()
    except OSError as e:
      raise OSError(e.errno, e.strerror, self._path) from e
    finally:
      for w in writers:
        w.close()


class EventFile:
  """A TensorBoard event file written synchronously, in the caller's thread.

  tensorboardX's SummaryWriter writes from a thread of its own: when a write fails (disk
  full) that thread dies and the next `add_scalar` blocks forever on its full queue — the
  trainer hung instead of stopping. Here a failed write raises OSError where the record is
  written, like metrics.jsonl's. Records are buffered and flushed at most once a second (and
  on close), so a write error surfaces within a second and a step costs no system call.

    >>> EventFile('runs/x/tensorboard/train').write(12, {'loss': 3.21})
  """

  def __init__(self, logdir):
    from tensorboardX.event_file_writer import EventsWriter  # pylint: disable=g-import-not-at-top
    os.makedirs(logdir, exist_ok=True)
    # A suffix of its own: event files are named by the second, and a rerun (e.g. a resume)
    # within the same second would otherwise write into the previous run's file.
    try:
      self._events = EventsWriter(os.path.join(logdir, 'events'),
                                  filename_suffix=f'.{os.getpid()}.{time.time_ns()}')
    except OSError as e:  # the first event is written here
      raise OSError(e.errno, e.strerror, e.filename or logdir) from e
    self.path = self._events._file_name  # pylint: disable=protected-access
    self._flushed = time.monotonic()

  def write(self, step, scalars):
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
    now = time.time()
    try:
      for name, value in scalars.items():
        self._events.write_event(event_pb2.Event(wall_time=now, step=int(step),
                                                 summary=summary.scalar(name, value)))
      if time.monotonic() - self._flushed >= FLUSH_SECONDS:
        self._events.flush()
        self._flushed = time.monotonic()
    except OSError as e:  # a write error names no file: name it
      raise OSError(e.errno, e.strerror, self.path) from e

  def close(self):
    try:
      self._events.close()
    except OSError as e:
      raise OSError(e.errno, e.strerror, self.path) from e


def _jsonable(v):
  v = float(v) if not isinstance(v, (int, str)) else v
  return v if not isinstance(v, float) or math.isfinite(v) else str(v)


def format_values(values):
  """'loss 3.2104  learning_rate 1.00e-03 ...' for log lines."""
  parts = []
  for k, v in values.items():
    if isinstance(v, float):
      text = f'{v:.3e}' if v and (abs(v) < 1e-3 or abs(v) >= 1e5) else f'{v:.4f}'
    else:
      text = str(v)
    parts.append(f'{k} {text}')
  return '  '.join(parts)


class Progress:
  """A tqdm bar on a terminal, plain lines elsewhere.

  Args:
    mode: 'auto' (bar if stderr is a tty), 'bar', 'lines' or 'none'.
    log_every: in 'lines' mode, print train metrics every so many steps.
    print_fn: where plain lines go (default: print to stdout).
  """

  def __init__(self, mode='auto', log_every=100, print_fn=None):
    if mode not in ('auto', 'bar', 'lines', 'none'):
      raise ValueError(f"Progress: mode must be 'auto', 'bar', 'lines' or 'none', got {mode!r}.")
    if mode == 'auto':
      mode = 'bar' if _isatty(sys.stderr) else 'lines'
    self.mode = mode
    self._log_every = max(1, int(log_every))
    self._print = print_fn or (lambda s: print(s, flush=True))
    self._bar = None
    self._first_step = 1

  def start(self, first_step, n_steps):
    self._first_step = first_step
    if self.mode == 'bar':
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm(total=n_steps, desc=f'train from step {first_step - 1}', unit='step',
                       file=sys.stderr, dynamic_ncols=True)

  def train_step(self, step, last_step, values):
    if self.mode == 'bar':
      self._bar.update(1)
      self._bar.set_postfix(loss=f'{values[LOSS]:.4f}', refresh=False)
    elif self.mode == 'lines' and (step % self._log_every == 0 or step == last_step
                                   or step == self._first_step):
      self._print(f'step {step}: {format_values(values)}')

  def message(self, text):
    if self.mode == 'bar' and self._bar is not None:
      self._bar.write(text, file=sys.stderr)
    elif self.mode != 'none':
      self._print(text)

  def close(self):
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def _isatty(stream):
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False
