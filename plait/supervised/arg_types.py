"""argparse types shared by the CLIs (plait-train, plait-decode): a bad value is one usage line
and exit 2 before anything is loaded.

  >>> parser.add_argument('--steps', type=whole_number(0))
  >>> parser.add_argument('--top_p', type=finite_number(0.0, 1.0, low_open=True))
"""
import argparse
import math


def whole_number(low, high=None):
  """argparse type: an int in [low, high] (high None: no upper bound)."""
  def parse(text):
    try:
      value = int(text)
    except ValueError:
      value = None
    if value is None or value < low or (high is not None and value > high):
      bounds = f'>= {low}' if high is None else f'in [{low}, {high}]'
      raise argparse.ArgumentTypeError(f'expected a whole number {bounds}, got {text!r}')
    return value
  return parse


def finite_number(low, high=None, low_open=False):
  """argparse type: a finite float >= low (> low if low_open), <= high if given."""
  def parse(text):
    try:
      value = float(text)
    except ValueError:
      value = math.nan
    bad = (not math.isfinite(value) or value < low or (low_open and value == low)
           or (high is not None and value > high))
    if bad:
      lower = f'> {low}' if low_open else f'>= {low}'
      bounds = lower if high is None else f'{lower} and <= {high}'
      raise argparse.ArgumentTypeError(f'expected a finite number {bounds}, got {text!r}')
    return value
  return parse
