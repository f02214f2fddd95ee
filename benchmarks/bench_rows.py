"""One measured row of a benchmark table: filled by a function, or marked with its error.

A size that runs out of memory or a kind a backend lacks must not stop the sweep: the row
records `error` ("Type: first line of the message") next to whatever was measured before
the failure, and is printed as a JSON line either way.

  >>> row = measured({'length': 1024}, lambda row: row.update(ms=time_it()))
"""
import json
import statistics
import time

__all__ = ['compiled_gib', 'config_rows', 'measured', 'median_ms', 'save_rows']


def measured(row, fill, max_chars=300):
  """Calls fill(row) (it adds its measurements to row); returns row, printed as JSON."""
  try:
    fill(row)
  except Exception as e:  # pylint: disable=broad-except
    lines = str(e).strip().splitlines() or ['']
    row['error'] = f'{type(e).__name__}: {lines[0][:max_chars]}'
  print(json.dumps(row), flush=True)
  return row


def save_rows(rows, path):
  """Rewrites the rows so far to the JSON file `path` (None: nothing), so a sweep cut short
  (a time limit) keeps what it measured."""
  if path:
    with open(path, 'w') as f:
      json.dump(rows, f, indent=1)


def compiled_gib(compiled):
  """GiB a compiled program needs (XLA's memory analysis: arguments + outputs + temporaries -
  aliased, i.e. donated), or None where the backend gives no analysis."""
  memory = compiled.memory_analysis()
  if memory is None:
    return None
  return (memory.argument_size_in_bytes + memory.output_size_in_bytes
          + memory.temp_size_in_bytes - memory.alias_size_in_bytes) / 2 ** 30


def config_rows(names, every_full, measure, json_path=None):
  """[measure(name)] for config `names` (plus every full, non-_tiny config if `every_full`).

  Each row is printed as a JSON line and the list so far rewritten to `json_path`, so a
  sweep cut short (a time limit) keeps what it measured.
  """
  from plait import rl_free_configs  # pylint: disable=import-outside-toplevel
  names = list(names)
  if every_full:
    names += [n for n in rl_free_configs.names() if not n.endswith('_tiny')]
  rows = []
  for name in names:
    rows.append(measure(name))
    print(json.dumps(rows[-1]), flush=True)
    save_rows(rows, json_path)
  return rows


def median_ms(fn, *args, reps=20):
  """Median wall time in ms of `reps` calls of jit(fn)(*args), after one warm-up call."""
  import jax  # pylint: disable=import-outside-toplevel
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times) * 1e3
