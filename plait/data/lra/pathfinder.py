"""LRA Pathfinder (Linsley et al. 2018; Tay et al. 2020): are the two dots joined by one curve?

A scene is drawn on a 32 x 32 canvas (units: pixels of the 32 x 32 image) and rendered at
32, 64 or 128 pixels (Path-X), so every resolution shows the same scenes. Each scene has two
main contours of CONTOUR_LENGTH = 14 dashes (LRA's "hard" setting) and up to N_DISTRACTORS
shorter ones. A contour is a smooth random walk: dash centres STEP apart, each step turning by at
most MAX_TURN; dashes of different contours keep SEPARATION apart, so contours never touch.
Two dots (MARKER_RADIUS) mark contour ends: label 1 puts them on both ends of the first main
contour, label 0 on one end of each main contour. Example i has label i % 2 (exactly balanced;
training shuffles), and its scene is drawn from `np.random.default_rng([seed, split, i])`.

Images are white-on-black coverage, anti-aliased by SUPERSAMPLE x SUPERSAMPLE sampling: uint8
0..255. Tokens are the pixels in raster order: vocab 256, L = resolution**2, no padding.

    make = plait.data.lra.lra_pathfinder_inputs(split='train', resolution=32, batch_size=32)
    inputs, targets, weights = next(make())   # int32 (32, 1024), int32 (32,), float32 (32,)
"""
import math

import numpy as np

from plait.data.lra.common import GeneratedExamples, LRAInputs, Uniforms, check_int, make_split
from plait.data.lra.common import check_split

VOCAB_SIZE = 256
N_CLASSES = 2
RESOLUTIONS = (32, 64, 128)
MAX_LENGTH = 32 * 32  # at the default resolution; resolution ** 2 in general
SPLIT_SIZES = {'train': 160_000, 'validation': 20_000, 'test': 20_000}

CANVAS = 32.0          # scene units per image side
CONTOUR_LENGTH = 14    # dashes per main contour
DISTRACTOR_LENGTH = 5  # dashes per distractor
N_DISTRACTORS = 6  # as the original generator's defaults (6 of a third the length)
STEP = 2.0             # distance between consecutive dash centres
DASH_LENGTH = 0.5      # length of a dash's centre segment (its ink is DASH_RADIUS wider)
DASH_RADIUS = 0.4
MARKER_RADIUS = 1.0
SEPARATION = 3.0       # minimum distance between dash centres of different contours
MAX_TURN = np.pi / 6   # largest change of direction per step
MARGIN = 2.0           # dash centres stay this far inside the canvas
SUPERSAMPLE = 4

_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}
GENERATOR_VERSION = 1   # in cached splits' names: change it with anything that changes an image
_TRIES_PER_STEP = 8
_TRIES_PER_CONTOUR = 20


class Scene:
  """A drawn scene: `contours` (list of (n, 2) float arrays of dash centres, x then y; the two
  main contours first), `markers` ((2, 2) dot centres), `marked` (the contour index each dot
  ends) and `label` (1 if both dots end the same contour)."""

  def __init__(self, contours, markers, marked, label):
    self.contours, self.markers, self.marked, self.label = contours, markers, marked, label


class _Occupancy:
  """Grid cells (GRID per unit) too close to a placed dash centre for another contour's dash.

  Stamping a point blocks every cell whose centre is within SEPARATION + one cell diagonal of
  the centre of the point's cell: two points in cells whose centres are further apart than that
  are more than SEPARATION apart (each is within half a diagonal of its cell's centre), so a
  point in a free cell is at least SEPARATION from every stamped point.
  """
  GRID = 4

  def __init__(self):
    reach = SEPARATION + np.sqrt(2) / self.GRID
    self.pad = int(np.ceil(reach * self.GRID)) + 1
    offsets = np.arange(-self.pad, self.pad + 1) / self.GRID
    self.disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= reach ** 2
    n = int(CANVAS * self.GRID) + 2 * self.pad
    self.blocked = np.zeros((n, n), bool)

  def _cell(self, x, y):
    return int(y * self.GRID) + self.pad, int(x * self.GRID) + self.pad

  def free(self, x, y):
    return not self.blocked[self._cell(x, y)]

  def stamp(self, x, y):
    # The stamp's centre cell is the point's cell; the disk is measured between cell centres.
    r, c = self._cell(x, y)
    self.blocked[r - self.pad:r + self.pad + 1, c - self.pad:c + self.pad + 1] |= self.disk

  def stamp_all(self, points):
    for x, y in points:
      self.stamp(x, y)


def _clear_of(points, x, y):
  """True if (x, y) is SEPARATION from every point of `points` (a short list of (x, y))."""
  limit = SEPARATION ** 2
  return all((x - px) ** 2 + (y - py) ** 2 >= limit for px, py in points)


def _walk(uniform, n_dashes, occupancy):
  """Dash centres (n_dashes, 2) of one contour clear of `occupancy` (then stamped), or None."""
  low, high = MARGIN, CANVAS - MARGIN
  for _ in range(_TRIES_PER_CONTOUR):
    x, y = low + (high - low) * uniform(), low + (high - low) * uniform()
    angle = 2 * math.pi * uniform()
    if not occupancy.free(x, y):
      continue
    points = [(x, y)]
    for _ in range(1, n_dashes):
      for _ in range(_TRIES_PER_STEP):
        turn = MAX_TURN * (2 * uniform() - 1)
        nx, ny = x + STEP * math.cos(angle + turn), y + STEP * math.sin(angle + turn)
        # Own dashes count too, all but the previous one (STEP away by design).
        if (low <= nx <= high and low <= ny <= high and occupancy.free(nx, ny)
            and _clear_of(points[:-1], nx, ny)):
          points.append((nx, ny))
          x, y, angle = nx, ny, angle + turn
          break
      else:
        break
    if len(points) == n_dashes:
      occupancy.stamp_all(points)
      return np.array(points)
  return None


def draw_scene(rng, label):
  """A random `Scene` with the given label (0 or 1), drawn from the numpy Generator `rng`."""
  uniform = Uniforms(rng, block=256)
  while True:
    occupancy = _Occupancy()
    contours = []
    for _ in range(2):
      contour = _walk(uniform, CONTOUR_LENGTH, occupancy)
      if contour is None:
        break
      contours.append(contour)
    if len(contours) < 2:
      continue  # the main contours did not fit: draw the scene again
    for _ in range(N_DISTRACTORS):
      contour = _walk(uniform, DISTRACTOR_LENGTH, occupancy)
      if contour is not None:
        contours.append(contour)
    if label:
      markers, marked = contours[0][[0, -1]], [0, 0]
    else:
      ends = [-int(uniform() < 0.5), -int(uniform() < 0.5)]  # first (0) or last (-1) dash
      markers = np.stack([contours[0][ends[0]], contours[1][ends[1]]])
      marked = [0, 1]
    return Scene(contours, markers, marked, int(label))


def _dashes(contour):
  """(starts, ends) of the dash segments of a contour, each along its local direction."""
  chords = np.diff(contour, axis=0)
  chords /= np.linalg.norm(chords, axis=1, keepdims=True)
  direction = np.concatenate([chords[:1], chords[:-1] + chords[1:], chords[-1:]])
  direction /= np.linalg.norm(direction, axis=1, keepdims=True)
  half = direction * (DASH_LENGTH / 2)
  return contour - half, contour + half


def capsules(size, starts, ends, radius):
  """Bool (size, size) mask of the points within `radius` of any segment starts[k]-ends[k].

  Coordinates are scene units (x, y); pixel (row, col) of the mask has its centre at
  ((col + 0.5), (row + 0.5)) * CANVAS / size. Each segment is tested only in a small window.
  """
  starts, ends = np.asarray(starts, float), np.asarray(ends, float)
  scale = size / CANVAS
  mask = np.zeros((size, size), bool)
  if not len(starts):
    return mask
  reach = np.max(np.linalg.norm(ends - starts, axis=1)) / 2 + radius
  width = int(np.ceil(2 * reach * scale)) + 2
  centre = (starts + ends) / 2 * scale
  origin = np.floor(centre - width / 2).astype(int)                     # (P, 2) x, y
  offsets = np.arange(width)
  cols = origin[:, 0, None, None] + offsets[None, None, :]              # (P, 1, W)
  rows = origin[:, 1, None, None] + offsets[None, :, None]              # (P, W, 1)
  px, py = (cols + 0.5) / scale, (rows + 0.5) / scale
  ax, ay = starts[:, 0, None, None], starts[:, 1, None, None]
  dx, dy = (ends - starts)[:, 0, None, None], (ends - starts)[:, 1, None, None]
  length2 = np.maximum(dx * dx + dy * dy, 1e-12)
  t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1)
  inside = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2 <= radius ** 2
  rows, cols = np.broadcast_to(rows, inside.shape), np.broadcast_to(cols, inside.shape)
  keep = inside & (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
  mask[rows[keep], cols[keep]] = True
  return mask


def marker_ink(scene, size):
  """Bool (size, size) mask of the scene's two dots."""
  return capsules(size, scene.markers, scene.markers, MARKER_RADIUS)


def ink_masks(scene, size):
  """Per-contour bool (size, size) masks of the dashes, and one of the two dots (for checks)."""
  contours = [capsules(size, *_dashes(c), DASH_RADIUS) for c in scene.contours]
  return contours, marker_ink(scene, size)


def pixels(ink, resolution):
  """uint8 (resolution, resolution) coverage of a bool (resolution * SUPERSAMPLE)**2 ink mask."""
  coverage = ink.reshape(resolution, SUPERSAMPLE, resolution, SUPERSAMPLE).mean(axis=(1, 3))
  return np.round(coverage * 255).astype(np.uint8)


def render(scene, resolution):
  """uint8 (resolution, resolution) image of a scene: anti-aliased white ink on black."""
  dashes = [_dashes(c) for c in scene.contours]
  size = resolution * SUPERSAMPLE
  ink = capsules(size, np.concatenate([s for s, _ in dashes]),
                 np.concatenate([e for _, e in dashes]), DASH_RADIUS)
  return pixels(ink | marker_ink(scene, size), resolution)


class PathfinderExamples(GeneratedExamples):
  """The examples of one split: item i is `(pixels int32 (resolution**2,), i % 2, 1.0)`."""

  def __init__(self, split, seed, n_examples, resolution):
    self.split, self.seed, self.n_examples = split, seed, n_examples
    self.resolution, self.length = resolution, resolution ** 2

  def scene(self, i):
    """The `Scene` of example i (for checks and pictures)."""
    if not 0 <= i < self.n_examples:
      raise IndexError(f'PathfinderExamples: index {i} out of range [0, {self.n_examples}).')
    return draw_scene(np.random.default_rng([self.seed, _SPLIT_IDS[self.split], int(i)]), i % 2)

  def image(self, i):
    """uint8 (resolution, resolution) image of example i."""
    return render(self.scene(i), self.resolution)

  def generate(self, i):
    return self.image(i).reshape(-1), i % 2

  def cache_name(self):
    return (f'pathfinder{self.resolution}_{self.split}_seed{self.seed}_n{self.n_examples}'
            f'_v{GENERATOR_VERSION}')


def lra_pathfinder_inputs(split='train', batch_size=32, seed=0, resolution=32, n_examples=None,
                          workers=0, cache_dir=None):
  """Batches of LRA Pathfinder (gin-configurable); generated, so always available.

  Args:
    split: 'train' (160,000 examples, reshuffled every epoch), 'validation' or 'test' (20,000
      each, in a fixed order); every split repeats forever.
    batch_size: examples per batch.
    seed: non-negative data seed: the scenes and the training order.
    resolution: 32, 64 or 128 (Path-X) pixels per side; the scenes are the same at each.
    n_examples: examples in the split (default: 80/10/10 % of LRA's 200,000).
    workers: 0 makes images as the pipeline reads them (300-400/s at 32x32); N > 0 makes the
      whole split now with N processes. Either way each is made once and kept in memory
      (n_examples x resolution**2 bytes): LRA trains 200 epochs of batch 512.
    cache_dir: a directory where the whole split is kept as one compressed file: made once
      (with max(workers, 1) processes) and read back by later calls (~1 s for the training
      split instead of ~30 s with 14 processes).

  Returns:
    An `LRAInputs`: call it for a resumable Pipeline of (inputs int32 (B, resolution**2) pixel
    values 0..255, targets int32 (B,) in {0, 1}, weights float32 (B,) ones).
  """
  name = 'lra_pathfinder_inputs'
  split = check_split(name, split)
  batch_size = check_int(name, 'batch_size', batch_size)
  seed = check_int(name, 'seed', seed, low=0)
  if resolution not in RESOLUTIONS:
    raise ValueError(f'{name}: resolution must be one of {RESOLUTIONS}, got {resolution!r}.')
  n_examples = check_int(name, 'n_examples',
                         SPLIT_SIZES[split] if n_examples is None else n_examples)
  workers = check_int(name, 'workers', workers, low=0)
  examples = make_split(name, PathfinderExamples(split, seed, n_examples, int(resolution)),
                        workers, cache_dir)
  return LRAInputs(f'pathfinder{resolution}', examples, split, batch_size, seed, VOCAB_SIZE,
                   N_CLASSES, int(resolution) ** 2)
