"""What a model can read off plait's Pathfinder images without tracing a contour.

  python benchmarks/pathfinder_cues.py              # 4,000 validation scenes, ~10 CPU seconds
  python benchmarks/pathfinder_cues.py --scenes 64  # smoke

Two numbers from the scenes themselves (no model is trained):
- the distance between the two dots, per label, and the accuracy of guessing the label from
  it alone (a histogram of 1-unit bins fitted on the first half of the scenes, scored on the
  second half): the two ends of one 14-dash contour lie 18-25 units apart, one end each of
  two contours anywhere, so the distance alone is a strong cue;
- which pixel values only the dots make (pixels a dot covers against those of the dashes):
  a model can find the dots from single tokens if the brightest values are theirs alone.
"""
import argparse

import numpy as np

from plait.data.lra import pathfinder

RESOLUTION = 32


def dot_pixels(scene):
  """bool (32, 32): the pixels a dot of the scene covers at all."""
  size = RESOLUTION * pathfinder.SUPERSAMPLE
  ink = pathfinder.marker_ink(scene, size)
  s = pathfinder.SUPERSAMPLE
  return ink.reshape(RESOLUTION, s, RESOLUTION, s).any(axis=(1, 3))


def distance_accuracy(distances, labels, bin_width=1.0):
  """Accuracy on the second half of the label each distance bin holds most often in the first."""
  half = len(labels) // 2
  bins = np.arange(0.0, pathfinder.CANVAS * np.sqrt(2) + bin_width, bin_width)
  fit = [np.histogram(distances[:half][labels[:half] == c], bins)[0] for c in (0, 1)]
  guess = (fit[1] > fit[0]).astype(int)   # ties and empty bins: label 0
  where = np.clip(np.digitize(distances[half:], bins) - 1, 0, len(guess) - 1)
  return float(np.mean(guess[where] == labels[half:]))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  p.add_argument('--scenes', type=int, default=4000, help='validation scenes (examples 0..n-1)')
  args = p.parse_args(argv)
  examples = pathfinder.PathfinderExamples('validation', 0, args.scenes, RESOLUTION)
  distances, labels, dot_values, dash_values = [], [], [], []
  for i in range(args.scenes):
    scene = examples.scene(i)
    distances.append(float(np.linalg.norm(scene.markers[0] - scene.markers[1])))
    labels.append(scene.label)
    image, dots = pathfinder.render(scene, RESOLUTION), dot_pixels(scene)
    dot_values.append(image[dots])
    dash_values.append(image[~dots & (image > 0)])
  distances, labels = np.array(distances), np.array(labels)
  top = int(max(v.max() for v in dash_values if v.size))
  bright = np.array([np.sum(v > top) for v in dot_values])
  print(f'{args.scenes} validation scenes at {RESOLUTION}x{RESOLUTION}')
  for c in (0, 1):
    q = np.percentile(distances[labels == c], [5, 25, 50, 75, 95])
    print(f'  label {c}: dot distance 5/25/50/75/95 %: ' + ' / '.join(f'{v:.1f}' for v in q))
  print(f'  label from the dot distance alone: {100 * distance_accuracy(distances, labels):.1f} % '
        '(bins fitted on the first half, scored on the second)')
  print(f'  dash pixels reach {top}; dot pixels above that: {bright.mean():.2f} per image '
        f'(images with none: {100 * np.mean(bright == 0):.1f} %)')


if __name__ == '__main__':
  main()
