"""The README demo: train a small ReformerLM on Crime and Punishment, then print a sample."""
import sys


def main():
  print('plait demo: not yet available (the models, training and data work has not landed).')
  return 0


if __name__ == '__main__':
  sys.exit(main())
