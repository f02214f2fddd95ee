"""One measured row of a benchmark table: filled by a function, or marked with its error.

A size that runs out of memory or a kind a backend lacks must not stop the sweep: the row
records `error` ("Type: first line of the message") next to whatever was measured before
the failure, and is printed as a JSON line either way.

  >>> row = measured({'length': 1024}, lambda row: row.update(ms=time_it()))
"""
import json

__all__ = ['measured']


def measured(row, fill, max_chars=300):
  """Calls fill(row) (it adds its measurements to row); returns row, printed as JSON."""
  try:
    fill(row)
  except Exception as e:  # pylint: disable=broad-except
    lines = str(e).strip().splitlines() or ['']
    row['error'] = f'{type(e).__name__}: {lines[0][:max_chars]}'
  print(json.dumps(row), flush=True)
  return row
